"""Where things live: the user's data root (datasets they bring) and the cache (embedded data,
features), plus :class:`DataError`, the error every loader raises for missing or broken data.

This is infrastructure, not a dataset or a network: ``infocam.data``, ``infocam.models`` and
``infocam.vendor`` all import it, and it imports none of them.

The data root is set once with the environment variable ``INFOCAM_DATA``; every chapter also
takes a ``data_root`` parameter that wins over it, and that one name travels unchanged from the
command line (``-p data_root=...``) to the loaders. The Makefile may point ``INFOCAM_DATA`` at a
folder of this machine; the package itself knows no folder names of any machine.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "INFOCAM_DATA"
CACHE_ENV = "INFOCAM_CACHE"


class DataError(ValueError):
    """A dataset is missing, malformed or fails its checksum; the message says how to fix it."""


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding user-supplied datasets, or None when none is configured.

    ``data_root`` (a chapter's parameter) wins over ``$INFOCAM_DATA``; None or ``""`` means
    "not set". A root that is set but is not a folder is an error, never a silent fallback.
    """
    value = data_root if data_root not in (None, "") else os.environ.get(DATA_ROOT_ENV, "")
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


def find_dataset(names: list[str] | tuple[str, ...], data_root=None) -> Path | None:
    """First existing ``<data root>/<name>`` among ``names``; None if no root or no match."""
    root = resolve_data_root(data_root)
    if root is None:
        return None
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def cache_dir() -> Path:
    """Per-user cache for embedded data and features (``$INFOCAM_CACHE``, else ``$XDG_CACHE_HOME/infocam``)."""
    if os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "infocam"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission, read-only file system
        raise DataError(
            f"cache folder {str(path)!r} cannot be created ({exc.strerror or exc}); set {CACHE_ENV} "
            "to a writable folder"
        ) from None
    return path


def read_utf8(path: Path) -> str:
    """A dataset's metadata file as text; DataError naming the line of the first byte that is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                        "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
