"""The method catalogue: every way the book turns a network (or no network) into a localisation map.

One method is one object with a stable ``id`` (what results, metrics and the summary are keyed by), a
display ``label`` and a ``role`` that says what it is compared as: ``"cam"`` (the baseline map),
``"infocam"`` (the paper's maps), ``"prior"`` (network-free), ``"other"`` (anything added later).
A method implements one seam, torchcam-style: :meth:`Method.maps` from final conv features and the
linear head (so cached features suffice), or, with ``needs_model = True`` (gradient methods such as
Grad-CAM), :meth:`Method.model_maps` from the network itself.

Adding a method is one class in one file: subclass :class:`Method`, decorate it with
:func:`register` and give it :meth:`Method.instances`; :func:`catalogue` then lists it in chapters 4
and 5, in ``infocam train``'s results and on the summary page. A method outside the package is
loaded by naming its module in ``INFOCAM_METHODS`` (comma-separated module names).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import ClassVar

import torch

from infocam import wsol
from infocam.cam import class_maps

METHODS_ENV = "INFOCAM_METHODS"
ROLES = ("cam", "infocam", "prior", "other")
_FAMILIES: list[type[Method]] = []


def register(cls):
    """Class decorator: add a method family to the catalogue (in registration order)."""
    if cls not in _FAMILIES:
        _FAMILIES.append(cls)
    return cls


@dataclass(frozen=True)
class Method:
    """One localisation method. Subclasses set ``role`` and implement :meth:`maps` (or
    :meth:`model_maps` with ``needs_model = True``) and :meth:`instances`."""

    id: str
    label: str
    role: ClassVar[str] = "other"
    needs_model: ClassVar[bool] = False

    @classmethod
    def instances(cls, windows=(1, 3), faithful_window: int | None = None) -> list[Method]:
        """The settings of this family the book scores, given the chapter's infoCAM windows."""
        raise NotImplementedError

    def maps(self, features: torch.Tensor, weight: torch.Tensor, class_idx: torch.Tensor,
             logits: torch.Tensor) -> torch.Tensor:
        """Maps (n, h', w') of classes ``class_idx`` from final features (n, C, h, w), the head's
        (K, C) ``weight`` and the logits (n, K)."""
        raise NotImplementedError(f"{self.id} needs the network, not cached features (needs_model=True)")

    def model_maps(self, model, x: torch.Tensor, class_idx: torch.Tensor, head: str = "fc") -> torch.Tensor:
        """Maps from the network itself (gradient methods); the default reads its features and head."""
        with torch.no_grad():
            feats = model.features(x).float()
            fc = getattr(model, head)
            return self.maps(feats, fc.weight, class_idx, fc(feats.mean((2, 3))))


@register
@dataclass(frozen=True)
class CAMMethod(Method):
    """CAM (Zhou et al. 2016): M_y = Σ_k w_{y,k} F_k."""

    role: ClassVar[str] = "cam"

    @classmethod
    def instances(cls, windows=(1, 3), faithful_window=None):
        return [cls("cam", "CAM")]

    def maps(self, features, weight, class_idx, logits):
        return class_maps(features, weight, class_idx, logits, variant="none", window=1)


@register
@dataclass(frozen=True)
class InfoCAMMethod(Method):
    """infoCAM: the PMI difference M_y − mean_{y'≠y} M_{y'} ("mean-others") or M_y − M_{y_min}
    ("least-likely"), summed over a k×k window; ``mode="faithful"`` is the original code's full padding."""

    variant: str = "mean-others"
    window: int = 1
    mode: str = "same"
    role: ClassVar[str] = "infocam"

    @classmethod
    def make(cls, variant: str, window: int, mode: str = "same") -> InfoCAMMethod:
        suffix = "-faithful" if mode == "faithful" else ""
        return cls(f"infocam-{variant}-k{window}{suffix}", f"infoCAM {variant} k={window}" + (" faithful" if suffix else ""),
                   variant, window, mode)

    @classmethod
    def instances(cls, windows=(1, 3), faithful_window=None):
        out = [cls.make(v, k) for v in ("mean-others", "least-likely") for k in windows]
        if faithful_window and faithful_window > 1:
            out.append(cls.make("mean-others", faithful_window, "faithful"))
        return out

    def maps(self, features, weight, class_idx, logits):
        return class_maps(features, weight, class_idx, logits, variant=self.variant, window=self.window, mode=self.mode)


@register
@dataclass(frozen=True)
class CentrePrior(Method):
    """The network-free baseline: the same centred Gaussian (sd 0.25 of the grid) for every image.
    Localisation datasets put objects near the centre; a map should beat it."""

    sigma: float = 0.25
    role: ClassVar[str] = "prior"

    @classmethod
    def instances(cls, windows=(1, 3), faithful_window=None):
        return [cls("centre", "centre Gaussian (no network)")]

    def maps(self, features, weight, class_idx, logits):
        return torch.from_numpy(wsol.centre_prior(len(features), *features.shape[2:], sigma=self.sigma))


def _load_plugins() -> None:
    for name in filter(None, (n.strip() for n in os.environ.get(METHODS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{METHODS_ENV} names module {name!r}, which cannot be imported ({exc}); "
                              "put it on PYTHONPATH or remove it from the variable") from exc


def catalogue(windows=(1, 3), faithful_window: int | None = None, *, roles=ROLES) -> list[Method]:
    """Every registered method at the given infoCAM windows (and the original code's full-padding
    window at ``faithful_window``, if given), optionally only some ``roles``."""
    if not windows or any(int(k) < 1 for k in windows):
        raise ValueError(f"windows must be a non-empty list of integers >= 1, got {list(windows)}")
    _load_plugins()
    out = [m for fam in _FAMILIES for m in fam.instances(tuple(windows), faithful_window) if m.role in roles]
    ids = [m.id for m in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two catalogue methods share an id: {sorted({i for i in ids if ids.count(i) > 1})}")
    return out


def by_id(methods, ids) -> list[Method]:
    """The methods of ``methods`` with the given ids, in the order of ``ids`` (unknown ids named)."""
    index = {m.id: m for m in methods}
    missing = [i for i in ids if i not in index]
    if missing:
        raise KeyError(f"no method with id {missing}; the catalogue has {sorted(index)}")
    return [index[i] for i in ids]


def infocam(variant: str, window: int, mode: str = "same") -> InfoCAMMethod:
    """One infoCAM setting (e.g. for a figure or the ADL network's infoCAM+)."""
    return InfoCAMMethod.make(variant, window, mode)


__all__ = ["CAMMethod", "CentrePrior", "InfoCAMMethod", "METHODS_ENV", "Method", "ROLES", "by_id", "catalogue",
           "infocam", "register"]
