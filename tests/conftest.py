"""Shared fixtures: an isolated cache and data root per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CUB = REPO.parent / "shared" / "data" / "CUB_200_2011_cub50"  # beside the checkout, if present


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Point INFOCAM_CACHE at an empty folder (the real cache is left alone)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("INFOCAM_CACHE", str(cache))
    return cache


@pytest.fixture
def real_cub() -> Path:
    """The real 50-class CUB-200-2011 subset beside the checkout (or under INFOCAM_DATA); skip if absent."""
    candidates = [SHARED_CUB]
    if os.environ.get("INFOCAM_DATA"):
        candidates.insert(0, Path(os.environ["INFOCAM_DATA"]) / "CUB_200_2011")
    for path in candidates:
        if (path / "images.txt").exists():
            return path
    pytest.skip("real CUB-200-2011 subset not present (../shared/data/CUB_200_2011_cub50)")
