"""infocam.cli: every failure is one line on stderr with a non-zero exit code; --book-dir."""

from __future__ import annotations

import pytest

from infocam import cli
from tests.test_bad_input import make_book


def _err(capsys) -> str:
    return capsys.readouterr().err


def test_unknown_chapter_is_one_line(capsys):
    assert cli.main(["run", "99_nothing"]) == 2
    err = _err(capsys)
    assert err.count("\n") == 1 and "unknown chapter '99_nothing'" in err


def test_unknown_profile_is_refused_by_argparse(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "theory", "--profile", "fast"])
    assert info.value.code == 2 and "invalid choice: 'fast'" in _err(capsys)


def test_malformed_override_is_one_line(capsys):
    assert cli.main(["run", "theory", "-p", "seeds"]) == 2
    assert "-p expects key=value" in _err(capsys)


def test_profiles_lists_allowed_values(tmp_path, capsys):
    book = make_book(tmp_path)
    assert cli.main(["profiles", "toy", "--book-dir", str(book)]) == 0
    out = capsys.readouterr().out
    assert "allowed values:" in out and "  seed: integer ≥ 0" in out and "  fail: one of , data, assert" in out


def test_prepare_uses_the_book_dir(tmp_path):
    book = make_book(tmp_path)
    assert cli.main(["prepare", "--book-dir", str(book), "--out", str(tmp_path / "out"), "--profile", "paper", "toy"]) == 0
    assert "seed = 1" in (tmp_path / "out" / "01_toy.ipynb").read_text()  # the paper profile, injected


def test_prepare_into_a_file_is_one_line(tmp_path, capsys):
    book = make_book(tmp_path)
    (tmp_path / "out").write_text("x")
    assert cli.main(["prepare", "--book-dir", str(book), "--out", str(tmp_path / "out"), "toy"]) == 1
    err = _err(capsys)
    assert err.count("\n") == 1 and "is not a folder" in err


def test_data_root_that_does_not_exist_fails_features(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path / "nope"))
    assert cli.main(["features"]) == 2
    err = _err(capsys)
    assert err.count("\n") == 1 and "is not a folder" in err


def test_broken_cub_folder_fails_features_naming_the_file(tmp_path, monkeypatch, capsys):
    from tests.test_cub import make_tiny_cub

    folder = make_tiny_cub(tmp_path, num_classes=2, n_train=1, n_test=1)
    (folder / "train_test_split.txt").unlink()
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path))
    assert cli.main(["features"]) == 2
    err = _err(capsys)
    assert err.count("\n") == 1 and "train_test_split.txt is missing" in err
