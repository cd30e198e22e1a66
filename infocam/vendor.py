"""Third-party browser assets for the offline book, fetched at build time (never committed).

MathJax 3's single-file ``es5/tex-svg.js`` (fonts included) is copied into ``.vendor/static/mathjax/``,
which ``_config.yml`` lists as a Sphinx static path, so the built site serves it itself.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from infocam.data.npm import npm_pack
from infocam.utils import atomic_write_bytes

MATHJAX_SPEC = "mathjax@3.2.2"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
REPO = Path(__file__).resolve().parent.parent


def fetch_mathjax(dest: Path = REPO / ".vendor" / "static" / "mathjax" / "tex-svg.js") -> Path:
    """Extract MathJax's ``tex-svg.js`` from the npm tarball into ``dest`` (cached)."""
    if dest.exists() and dest.stat().st_size > 1_000_000:
        return dest
    tarball = npm_pack(MATHJAX_SPEC, MATHJAX_SHA256)
    with tarfile.open(tarball, "r:gz") as tar:
        data = tar.extractfile("package/es5/tex-svg.js").read()
    atomic_write_bytes(dest, data)
    return dest
