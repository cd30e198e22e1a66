"""infocam.claims: a claim is recorded, raises in strict mode and is reported (not raised) in a user's run."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
import yaml

from infocam import bookbuild, claims, cli, runs


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Nothing recorded yet, no run or build environment: the defaults of a plain Python session."""
    monkeypatch.setattr(runs, "_RECORDED", {})
    for key in (runs.RESULTS_ENV, runs.METRICS_DIR_ENV, runs.CHAPTER_ENV, runs.CLAIMS_ENV):
        monkeypatch.delenv(key, raising=False)


def test_a_claim_that_holds_is_recorded_and_returned():
    assert claims.claim("bound", "no classifier exceeds I(X;Y)", np.float64(0.3) <= 0.5, bound=np.float64(0.3), I=0.5)
    assert runs.recorded()["claims"] == [
        {"id": "bound", "statement": "no classifier exceeds I(X;Y)", "holds": True, "numbers": {"bound": 0.3, "I": 0.5}}
    ]


def test_strict_is_the_default_and_raises_with_statement_and_numbers():
    assert claims.mode() == claims.STRICT
    with pytest.raises(claims.ClaimFailed, match=r"claim 'gain' does not hold: PC-softmax helps \(gain = -0\.25, tol = 0\)"):
        claims.claim("gain", "PC-softmax helps", -0.25 > 0, gain=-0.25, tol=0)
    assert issubclass(claims.ClaimFailed, AssertionError)
    assert runs.recorded()["claims"][0]["holds"] is False  # recorded before it raised


def test_report_mode_returns_false_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv(runs.CLAIMS_ENV, "report")
    assert claims.claim("gain", "PC-softmax helps", False, gain=-0.25) is False
    err = capsys.readouterr().err
    assert "'gain' does not hold" in err and "PC-softmax helps" in err and "gain = -0.25" in err
    assert claims.not_holding(runs.recorded()) == runs.recorded()["claims"]


def test_the_book_build_is_strict_whatever_the_mode_says(monkeypatch, tmp_path):
    monkeypatch.setenv(runs.CLAIMS_ENV, "report")
    monkeypatch.setenv(runs.METRICS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(runs.CHAPTER_ENV, "01_x")
    with pytest.raises(claims.ClaimFailed):
        claims.claim("gain", "PC-softmax helps", False)
    written = json.loads((tmp_path / "01_x.json").read_text())
    assert written["claims"][0]["id"] == "gain" and written["claims"][0]["holds"] is False


def test_recording_an_id_again_replaces_it_and_keeps_the_order(monkeypatch):
    monkeypatch.setenv(runs.CLAIMS_ENV, "report")
    claims.claim("a", "first", True)
    claims.claim("b", "second", False)
    claims.claim("b", "second", True, x=1)
    assert [(c["id"], c["holds"]) for c in runs.recorded()["claims"]] == [("a", True), ("b", True)]


@pytest.mark.parametrize("args, error, match", [
    (("", "s", True), ValueError, "non-empty"),
    (("a", "", True), ValueError, "statement"),
    (("a", "s", 1), TypeError, "holds must be a bool"),
    (("a", "s", np.array([True, False])), TypeError, "holds must be a bool"),
])
def test_malformed_claims_are_refused(args, error, match):
    with pytest.raises(error, match=match):
        claims.claim(*args)


def test_numbers_must_be_jsonable():
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        claims.claim("a", "s", True, what=object())


def test_unknown_mode_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(runs.CLAIMS_ENV, "lenient")
    with pytest.raises(ValueError, match="INFOCAM_CLAIMS must be 'strict' or 'report', got 'lenient'"):
        claims.claim("a", "s", True)


@pytest.mark.parametrize("profile, overrides, mode", [
    ("smoke", {}, "strict"), ("default", None, "strict"), ("default", {"seed": 1}, "report"),
    ("smoke", {"seed": 1}, "report"), ("paper", {}, "report"),
])
def test_run_mode_follows_profile_and_overrides(profile, overrides, mode):
    assert runs.claims_mode(profile, overrides) == mode


# -- a tiny chapter with a deliberately inverted claim -------------------------------------------------


@pytest.fixture
def inverted_book(tmp_path):
    """One chapter whose claim is false at ``shift=0`` (a later cell still records a metric) and whose
    exercise's asserted answer holds only at ``shift=0``."""
    book = tmp_path / "book"
    (book / "params").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("shift = 0.0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_markdown_cell("One plus the shift exceeds two."),
        nbformat.v4.new_code_cell(
            "from infocam.claims import claim\n"
            "value = 1 + shift\n"
            "claim('inverted', 'one plus the shift exceeds two', value > 2, value=value)\n"
            "claim('true', 'one plus the shift is positive', value > 0, value=value)"
        ),
        nbformat.v4.new_code_cell("from infocam import runs\nruns.record(after=value)"),
        nbformat.v4.new_markdown_cell("## Exercises"),
        nbformat.v4.new_markdown_cell("```{solution-start} ex-shift\n```"),
        nbformat.v4.new_code_cell("assert shift == 0, 'the answer assumes shift = 0'\nprint('solution done')"),
        nbformat.v4.new_markdown_cell("```{solution-end}\n```"),
    ]
    nbformat.write(nb, book / "01_inverted.ipynb")
    profiles = {"smoke": {}, "default": {}, "paper": {}, "constraints": {"shift": {"type": "number"}}}
    (book / "params" / "01_inverted.yml").write_text(yaml.safe_dump(profiles))
    return book


@pytest.mark.slow  # runs a chapter in a Jupyter kernel
def test_book_build_fails_on_the_inverted_claim(inverted_book, tmp_path, monkeypatch):
    # as `infocam execute` runs a chapter for the book; a stray report mode must not soften it
    env = {runs.CHAPTER_ENV: "01_inverted", runs.METRICS_DIR_ENV: str(tmp_path / "metrics"), runs.CLAIMS_ENV: "report"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # execute_chapter sets them in os.environ; monkeypatch restores them
    (tmp_path / "metrics").mkdir()
    with pytest.raises(RuntimeError, match="ClaimFailed.*'inverted' does not hold: one plus the shift exceeds two"):
        bookbuild.execute_chapter(str(inverted_book / "01_inverted.ipynb"), 120, env)


@pytest.mark.slow  # runs a chapter in a Jupyter kernel
def test_run_with_book_parameters_fails_on_the_inverted_claim(inverted_book, tmp_path, capsys):
    code = cli.main(["run", "inverted", "--book-dir", str(inverted_book), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1
    assert "ClaimFailed: claim 'inverted' does not hold: one plus the shift exceeds two (value = 1)" in err
    assert list((tmp_path / "runs" / "01_inverted").glob("*.failed"))


@pytest.mark.slow  # runs a chapter in a Jupyter kernel
def test_run_with_an_override_reports_the_claim_and_finishes(inverted_book, tmp_path, capsys):
    code = cli.main(["run", "inverted", "--book-dir", str(inverted_book), "--runs-dir", str(tmp_path / "runs"),
                     "-p", "shift=0.5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "claims that do not hold with your parameters (1;" in out
    assert "  - inverted: one plus the shift exceeds two" in out
    assert "exercise answers that do not hold with your parameters (1;" in out
    assert "  - ex-shift: AssertionError: the answer assumes shift = 0" in out
    assert "IPKernelApp" not in out + err  # the kernel's own log stays in the run folder
    (run,) = (tmp_path / "runs" / "01_inverted").glob("2*")
    results = json.loads((run / "results.json").read_text())
    assert results["claims_mode"] == "report"
    assert results["claims"] == [
        {"id": "inverted", "statement": "one plus the shift exceeds two", "holds": False, "numbers": {"value": 1.5}},
        {"id": "true", "statement": "one plus the shift is positive", "holds": True, "numbers": {"value": 1.5}},
    ]
    assert results["metrics"] == {"after": 1.5}  # the chapter went on after the failed claim
    assert results["exercises_not_holding"] == [{"exercise": "ex-shift", "error": "AssertionError: the answer assumes shift = 0"}]
    executed = nbformat.read(run / "01_inverted.ipynb", as_version=4)
    assert not [c for c in executed.cells if "papermill-error-cell-tag" in c.metadata.get("tags", [])]
    (cell,) = [c for c in nbformat.read(run / "01_inverted.ipynb", as_version=4).cells if "claim('inverted'" in c.source]
    html = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
    assert len(html) == 1 and "admonition warning" in html[0] and "contradict the sentence above" in html[0]
    assert "value = 1.5" in html[0]
