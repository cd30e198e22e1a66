"""Where data lives: the user's data root (datasets they bring) and the cache (embedded data).

The data root is set once with the environment variable ``INFOCAM_DATA``; every chapter also
takes a ``data_root`` parameter that overrides it. The Makefile points it at ``../shared/data``
when that folder sits beside the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "INFOCAM_DATA"
CACHE_ENV = "INFOCAM_CACHE"


class DataError(ValueError):
    """A dataset is missing, malformed or fails its checksum; the message says how to fix it."""


def data_root(override: str | os.PathLike | None = None) -> Path | None:
    """The folder holding user-supplied datasets, or None when none is configured.

    ``override`` (a chapter's ``data_root`` parameter) wins over ``$INFOCAM_DATA``; an empty
    string means "not set".
    """
    value = override if override not in (None, "") else os.environ.get(DATA_ROOT_ENV, "")
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data root {str(root)!r} is not a folder. Set {DATA_ROOT_ENV} (or the chapter's "
            "data_root parameter) to the folder that holds your datasets, e.g. "
            "<root>/MNIST/raw/, <root>/CUB_200_2011/."
        )
    return root


def find_dataset(names: list[str] | tuple[str, ...], override=None) -> Path | None:
    """First existing ``<data root>/<name>`` among ``names``; None if no root or no match."""
    root = data_root(override)
    if root is None:
        return None
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def cache_dir() -> Path:
    """Per-user cache for embedded data (``$INFOCAM_CACHE``, else ``$XDG_CACHE_HOME/infocam``)."""
    if os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "infocam"
    path.mkdir(parents=True, exist_ok=True)
    return path
