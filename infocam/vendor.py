"""Third-party browser assets for the offline book, fetched at build time (never committed).

MathJax 3's single-file ``es5/tex-svg.js`` (fonts included) is copied into ``.vendor/static/mathjax/``,
which ``_config.yml`` lists as a Sphinx static path, so the built site serves it itself.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from infocam.fetch import npm_pack
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


def check_offline(html_dir: Path) -> list[str]:
    """Problems that would make the built book fetch something at view time (empty = offline).

    Checks every page: no ``<script src>`` or stylesheet ``<link href>`` pointing off-site, and
    MathJax served from the site itself.
    """
    import re

    html_dir = Path(html_dir)
    problems = []
    if not (html_dir / "_static" / "mathjax" / "tex-svg.js").exists():
        problems.append("_static/mathjax/tex-svg.js is missing: run `make data` before building")
    remote = re.compile(r"""<(?:script[^>]*\ssrc|link[^>]*\shref)=["'](?:https?:)?//""", re.I)
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(errors="replace")
        for match in remote.finditer(text):
            problems.append(f"{page.relative_to(html_dir)}: remote asset {text[match.start():match.start() + 120]!r}")
        if 'class="math' in text and "tex-svg.js" not in text:
            problems.append(f"{page.relative_to(html_dir)}: holds math but does not load MathJax")
    return problems


if __name__ == "__main__":
    import sys

    found = check_offline(Path(sys.argv[1]))
    print("\n".join(found) or f"{sys.argv[1]}: every page is self-contained (MathJax served locally)")
    raise SystemExit(1 if found else 0)
