"""infocam.runs and the CLI: parameter validation before anything runs, atomic run folders."""

from __future__ import annotations

import json

import nbformat
import pytest
import yaml

from infocam import cli, runs


@pytest.fixture
def toy_book(tmp_path):
    """A one-chapter book whose chapter records a metric computed from its parameters."""
    book = tmp_path / "book"
    (book / "params").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("seed = 0\nscale = 1.5\nname = 'x'\nflag = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from infocam import runs\n"
            "assert not flag, 'flag must stay off'\n"
            "runs.record(data_source='toy', value=seed * scale)"
        ),
    ]
    nbformat.write(nb, book / "01_toy.ipynb")
    profiles = {"smoke": {"scale": 0.5}, "default": {"seed": 0, "scale": 1.5, "name": "x", "flag": False}, "paper": {"seed": 1}}
    (book / "params" / "01_toy.yml").write_text(yaml.safe_dump(profiles))
    return book


def test_resolve_chapter_names(toy_book):
    for name in ["01_toy", "toy", "01", "book/01_toy.ipynb"]:
        assert runs.resolve_chapter(name, toy_book) == "01_toy"
    with pytest.raises(runs.ParameterError, match="unknown chapter"):
        runs.resolve_chapter("02", toy_book)


def test_misspelt_parameter_is_refused_with_suggestion(toy_book):
    with pytest.raises(runs.ParameterError, match="no parameter 'sede'.*Did you mean 'seed'"):
        runs.validate("01_toy", {"sede": 3}, toy_book)


@pytest.mark.parametrize(
    "params",
    [{"seed": "three"}, {"seed": 1.5}, {"flag": 1}, {"name": 3}, {"seed": True}],
)
def test_wrong_types_are_refused(toy_book, params):
    with pytest.raises(runs.ParameterError, match="must be of type"):
        runs.validate("01_toy", params, toy_book)


def test_int_is_accepted_for_float(toy_book):
    assert runs.validate("01_toy", {"scale": 2}, toy_book) == {"scale": 2}


def test_parse_override_reads_yaml():
    assert runs.parse_override("seeds=3") == ("seeds", 3)
    assert runs.parse_override("lr=0.1") == ("lr", 0.1)
    assert runs.parse_override("ks=[1, 3]") == ("ks", [1, 3])
    assert runs.parse_override("flag=true") == ("flag", True)
    with pytest.raises(runs.ParameterError, match="key=value"):
        runs.parse_override("seeds")


@pytest.mark.slow  # runs a chapter in a Jupyter kernel
def test_run_writes_results_with_provenance(toy_book, tmp_path):
    out = runs.run_chapter("toy", "smoke", {"seed": 4}, runs_dir=tmp_path / "runs", book_dir=toy_book)
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"] == {"value": 2.0}
    assert results["data_source"] == "toy"
    assert results["parameters"]["scale"] == 0.5 and results["seed"] == 4
    assert results["claims"] == [] and results["claims_mode"] == "report"  # an override: a user's parameters
    for key in ["python", "torch", "infocam", "git_commit", "device", "wall_time_s"]:
        assert key in results
    assert (out / "01_toy.ipynb").exists()
    assert not list((tmp_path / "runs" / "01_toy").glob(".*.tmp"))


@pytest.mark.slow  # runs a chapter in a Jupyter kernel
def test_failed_run_leaves_no_results(toy_book, tmp_path):
    with pytest.raises(Exception, match="flag must stay off"):
        runs.run_chapter("toy", "smoke", {"flag": True}, runs_dir=tmp_path / "runs", book_dir=toy_book)
    folders = list((tmp_path / "runs" / "01_toy").iterdir())
    assert len(folders) == 1 and folders[0].name.endswith(".failed")
    assert not (folders[0] / "results.json").exists()


def test_cli_refuses_misspelt_parameter_before_running(capsys):
    code = cli.main(["run", "01_theory", "-p", "sed=1", "--runs-dir", "/nonexistent/never-created"])
    assert code == 2
    assert "no parameter 'sed'" in capsys.readouterr().err


def test_profile_missing_is_an_error(toy_book):
    with pytest.raises(runs.ParameterError, match="unknown profile"):
        runs.load_profile("01_toy", "fast", toy_book)


def test_record_outside_a_run_is_in_memory(monkeypatch):
    monkeypatch.delenv(runs.RESULTS_ENV, raising=False)
    import numpy as np

    got = runs.record(test_metric=np.float64(0.5), test_array=np.arange(2))
    assert got["test_metric"] == 0.5 and got["test_array"] == [0, 1]


def test_cli_features_without_cub_does_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path))
    assert cli.main(["features"]) == 0
    assert "nothing to extract" in capsys.readouterr().out


def test_cli_profiles_lists_all_three(capsys):
    assert cli.main(["profiles", "01_theory"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {p}:" in out for p in runs.PROFILES)


# -- value constraints (book/params/<chapter>.yml → constraints) -------------------------------------


@pytest.mark.parametrize("chapter", runs.chapters())
def test_every_parameter_has_a_valid_constraint(chapter):
    import jsonschema

    cell = runs.parameters_cell(runs.BOOK / f"{chapter}.ipynb")
    found = runs.constraints(chapter)
    assert set(found) == set(cell), "constrain every parameter, and only parameters"
    for name, schema in found.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert set(schema) - {"registry", "path", "device"} <= set(jsonschema.Draft202012Validator.META_SCHEMA["properties"]) | {
            "type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "enum", "const", "items",
            "minItems", "maxItems", "uniqueItems", "contains", "allOf", "not", "description", "pattern"}, name
        assert runs.allowed(schema)


@pytest.mark.parametrize("chapter", runs.chapters())
@pytest.mark.parametrize("profile", runs.PROFILES)
def test_every_profile_satisfies_the_constraints(chapter, profile):
    cell = runs.parameters_cell(runs.BOOK / f"{chapter}.ipynb")
    runs.check_values(chapter, cell)  # the defaults themselves
    runs.check_values(chapter, {**cell, **runs.load_profile(chapter, profile)})


def test_constraints_refuse_a_value_with_one_line(toy_book):
    path = toy_book / "params" / "01_toy.yml"
    profiles = yaml.safe_load(path.read_text())
    profiles["constraints"] = {"seed": {"type": "integer", "minimum": 0}, "scale": {"type": "number", "exclusiveMinimum": 0}}
    path.write_text(yaml.safe_dump(profiles))
    with pytest.raises(runs.ParameterError, match=r"parameter scale=-1 of chapter 01_toy is not allowed .*allowed: number > 0"):
        runs.resolve_parameters("01_toy", "smoke", {"scale": -1}, toy_book)
    assert runs.resolve_parameters("01_toy", "smoke", {"seed": 2}, toy_book) == {"scale": 0.5, "seed": 2}


def test_allowed_reads_like_a_rule():
    assert runs.allowed({"type": "integer", "minimum": 1}) == "integer ≥ 1"
    assert runs.allowed({"type": "number", "exclusiveMinimum": 0, "maximum": 1}) == "number > 0, ≤ 1"
    assert runs.allowed({"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1}) == \
        "list of integers ≥ 1, at least 1 item"
    assert runs.allowed({"registry": "losses"}).startswith("one of softmax, pc_softmax")
    assert runs.allowed({"type": "integer", "description": "0 or ≥ 2"}) == "0 or ≥ 2"


def test_unknown_registry_is_named():
    with pytest.raises(runs.ParameterError, match="unknown registry 'optimisers'"):
        runs.registry("optimisers")


def test_section_is_recorded(monkeypatch):
    monkeypatch.delenv(runs.RESULTS_ENV, raising=False)
    runs.section("test_part", ran=False, why="no data")
    got = runs.section("test_other", ran=True, why="ignored when it ran")
    assert got["sections"]["test_part"] == {"ran": False, "why": "no data"}
    assert got["sections"]["test_other"] == {"ran": True, "why": ""}


@pytest.mark.parametrize("ename, evalue, own", [
    ("DataError", "x", True), ("DeviceError", "x", True), ("ParameterError", "x", True),
    ("OSError", "[Errno 28] No space left on device: '/r/metrics.json'", True),
    ("OSError", "[Errno 13] Permission denied", False), ("AssertionError", "", False), ("ValueError", "x", False),
])
def test_which_chapter_errors_are_shown_as_one_line(tmp_path, ename, evalue, own):
    err = runs.ChapterError("01_toy", ename, evalue, tmp_path / "01_toy.ipynb")
    assert err.own is own and str(err).count("\n") == 0 and str(tmp_path / "01_toy.ipynb") in str(err)
