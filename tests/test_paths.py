"""infocam.paths: the data root (one setting, never a silent fallback) and the cache folder."""

import pytest

from infocam.paths import DATA_ROOT_ENV, DataError, cache_dir, find_dataset, resolve_data_root


def test_parameter_wins_over_the_environment(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "a"))
    assert resolve_data_root() == tmp_path / "a"
    assert resolve_data_root(str(tmp_path / "b")) == tmp_path / "b"
    assert resolve_data_root("") == tmp_path / "a"  # "" means "not set", not "no data root"


def test_unset_data_root_is_none(monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert resolve_data_root() is None and resolve_data_root("") is None
    assert find_dataset(["MNIST"]) is None


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.write_text("a file")], ids=["missing", "file"])
def test_data_root_that_is_not_a_folder_is_an_error(tmp_path, make):
    make(tmp_path / "root")
    with pytest.raises(DataError, match="is not a folder"):
        resolve_data_root(tmp_path / "root")
    with pytest.raises(DataError, match="is not a folder"):
        find_dataset(["MNIST"], tmp_path / "root")


def test_find_dataset_takes_the_first_existing_name(tmp_path):
    (tmp_path / "second").mkdir()
    assert find_dataset(["first", "second"], tmp_path) == tmp_path / "second"
    assert find_dataset(["first"], tmp_path) is None


def test_cache_dir_is_created_or_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCAM_CACHE", str(tmp_path / "c" / "d"))
    assert cache_dir().is_dir()
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("INFOCAM_CACHE", str(tmp_path / "file" / "below"))
    with pytest.raises(DataError, match="cannot be created"):
        cache_dir()
