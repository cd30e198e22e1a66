"""The ImageNet-1k class index order: which of a pretrained network's 1,000 outputs is which synset.

An ImageNet-1k classifier's output k is the k-th WordNet id (``n01440764`` = tench, ...) in the
sorted order of the ILSVRC-2012 training folders. We take that list from a well-kept package's
metadata instead of typing or downloading it: ``timm`` ships it as
``timm/data/_info/imagenet_synsets.txt``. The file is read directly (``timm`` is not imported,
so its import cost and its optional dependencies do not matter).

:func:`wnid_indices` maps dataset class ids (e.g. Tiny-ImageNet's 200 ``wnids``) to output indices
of the 1,000-way head, so a pretrained head restricted to those rows classifies the dataset
without training. Used in chapter 5 (Tiny-ImageNet).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

SYNSET_FILE = ("data", "_info", "imagenet_synsets.txt")
NUM_CLASSES = 1000


def synset_file() -> Path:
    """Path of timm's ImageNet-1k synset list (found without importing timm)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the ImageNet-1k class order is read from the timm package's metadata: "
                          "`pip install --no-deps timm==1.0.31` (see requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*SYNSET_FILE)
    if not path.is_file():
        raise ImportError(f"{path} is missing from the installed timm; reinstall timm==1.0.31")
    return path


@functools.lru_cache(maxsize=1)
def imagenet_synsets() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k WordNet ids in the order of a pretrained network's outputs."""
    path = synset_file()
    wnids = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(wnids) != NUM_CLASSES or len(set(wnids)) != NUM_CLASSES:
        raise ValueError(f"{path} should list {NUM_CLASSES} distinct synsets, found {len(set(wnids))}")
    return wnids


def wnid_indices(wnids) -> list[int]:
    """Output index in the 1,000-way ImageNet head of each WordNet id in ``wnids``.

    Raises ValueError naming the ids that are not ImageNet-1k classes.
    """
    position = {w: k for k, w in enumerate(imagenet_synsets())}
    missing = [w for w in wnids if w not in position]
    if missing:
        raise ValueError(f"{len(missing)} class ids are not ImageNet-1k classes, e.g. {missing[:5]}")
    return [position[w] for w in wnids]


__all__ = ["imagenet_synsets", "synset_file", "wnid_indices"]
