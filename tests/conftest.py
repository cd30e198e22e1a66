"""Shared fixtures: an isolated cache and data root per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infocam.utils import with_malloc_env

REPO = Path(__file__).resolve().parents[1]

# The chapters' kernels (nbval, infocam run) keep freed memory as the book build's do (utils.MALLOC_ENV);
# set before pytest-xdist starts its workers, which read it at start-up.
os.environ.update(with_malloc_env(os.environ))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Point INFOCAM_CACHE at an empty folder (the real cache is left alone)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("INFOCAM_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def onnx_exports(tmp_path_factory) -> Path:
    """One folder of ONNX exports for the whole test run, shared by pytest-xdist's workers. An export's
    file name keys the network's weights, input size, outputs and torch version, so tests whose feature
    caches start empty still export each network once (exporting is most of their time)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "onnx-exports"
    folder.mkdir(exist_ok=True)
    return folder


def share_onnx_exports(cache: Path, exports: Path) -> None:
    """Make ``cache``'s onnx/ folder the run's shared exports (features.export_onnx writes atomically)."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "onnx").symlink_to(exports, target_is_directory=True)


@pytest.fixture
def isolated_features_cache(isolated_cache, onnx_exports):
    """An empty feature cache (as ``isolated_cache``) whose ONNX exports are the run's shared ones."""
    share_onnx_exports(isolated_cache, onnx_exports)
    return isolated_cache


def shared_dataset(official: str, shared: str, marker: str) -> Path:
    """A real dataset under $INFOCAM_DATA/<official>, else beside the checkout; skip the test if absent."""
    candidates = [REPO.parent / "shared" / "data" / shared]
    if os.environ.get("INFOCAM_DATA"):
        candidates.insert(0, Path(os.environ["INFOCAM_DATA"]) / official)
    for path in candidates:
        if (path / marker).exists():
            return path
    pytest.skip(f"real {official} not present (../shared/data/{shared})")


@pytest.fixture
def real_cub() -> Path:
    """The real 50-class CUB-200-2011 subset beside the checkout (or under INFOCAM_DATA); skip if absent."""
    return shared_dataset("CUB_200_2011", "CUB_200_2011_cub50", "images.txt")


@pytest.fixture
def real_tiny_imagenet() -> Path:
    """The real Tiny-ImageNet folder beside the checkout (or under INFOCAM_DATA); skip if absent."""
    return shared_dataset("tiny-imagenet-200", "tiny-imagenet-200", "wnids.txt")


VENDORED_MATHJAX = Path(__file__).resolve().parents[1] / ".vendor" / "static" / "mathjax" / "tex-svg.js"


def book_skeleton(root: Path, chapters: list[str], static: bool = False) -> Path:
    """The book's own ``_config.yml``, extensions (and CSS with ``static``) under ``root``, with a
    ``_toc.yml`` of ``book/intro`` and ``chapters``: a small book the tests write pages into and build."""
    import shutil

    import yaml

    from infocam import runs

    (root / "book").mkdir(parents=True, exist_ok=True)
    shutil.copytree(runs.BOOK / "_ext", root / "book" / "_ext")
    if static:
        shutil.copytree(runs.BOOK / "_static", root / "book" / "_static")
    shutil.copy(runs.BOOK / "references.bib", root / "book")
    cfg = yaml.safe_load((runs.REPO / "_config.yml").read_text())
    if VENDORED_MATHJAX.exists():  # fetched by `make data`
        cfg["sphinx"]["config"]["html_static_path"] = [str(VENDORED_MATHJAX.parent.parent)]
    else:
        cfg["sphinx"]["config"].pop("mathjax_path", None)
        cfg["sphinx"]["config"].pop("html_static_path", None)
    (root / "_config.yml").write_text(yaml.safe_dump(cfg))
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   + "".join(f"  - file: book/{c}\n" for c in chapters))
    return root
