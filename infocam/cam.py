"""Class activation maps: CAM (Zhou et al. 2016) and infoCAM (Qin, Kim & Gedeon 2019).

For a network whose head is ``logits = fc(global_average_pool(F))`` with features ``F`` (C×h×w)
and a linear layer ``(W, b)``, the class activation map of class ``y`` is

    M_y(g) = Σ_k W[y, k] F_k(g),        and   f_y = mean_g M_y(g) + b_y,

so the PMI difference f_y − f_y′ (the log-partition cancels, chapter 1) is a sum over grid cells
of M_y − M_y′. infoCAM keeps that difference as the map:

* ``variant="mean-others"``: M_y − mean_{y′≠y} M_y′;
* ``variant="least-likely"``: M_y − M_{y_min}, y_min the class with the lowest logit of that sample;
* ``variant="none"``: M_y (no subtraction),

then sums it over a k×k window: ``mode="same"`` (default) keeps the h×w grid, the window of cell i
covering cells i − ⌊(k−1)/2⌋ … i + ⌊k/2⌋ on each axis (centred for odd k; for even k the extra cell
lies after i, below and to the right — PyTorch's ``padding="same"`` rule); ``mode="faithful"``
reproduces the original code's full convolution (padding k − 1, the map grows to (h+k−1)×(w+k−1); stretched over the image, its cell i lands where grid cell
i − (k−1)/2 belongs, so the evidence is squeezed towards the image centre by h/(h+k−1)).
Both subtractions are linear in the weights, so infoCAM costs one channel contraction per sample,
like CAM.

:func:`class_maps` does the maths from features and the head weight (e.g. cached features of a
frozen backbone); :class:`CAM` (the hook-based base, torchcam's order) and :class:`InfoCAM` (its
extension) capture the features of a model's layer and call it.

Usage (the torchcam pattern; hooks exist only inside the ``with`` block)::

    with InfoCAM(model, "features", "fc", variant="mean-others", window=3) as cam:
        logits = model(x)
        maps = cam(logits.argmax(1), logits)          # (N, h, w)

Used in chapters 4 and 5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("none", "mean-others", "least-likely")
MODES = ("same", "faithful")


def _resolve(model: nn.Module, layer, what: str) -> tuple[str, nn.Module]:
    """A submodule given by name or by object; a ValueError naming the choices otherwise."""
    modules = dict(model.named_modules())
    if isinstance(layer, str):
        if layer not in modules or layer == "":
            names = [n for n in modules if n]
            shown = ", ".join(names[:25]) + (" ..." if len(names) > 25 else "")
            raise ValueError(f"{what} {layer!r} is not a submodule of the model; its submodules are: {shown}")
        return layer, modules[layer]
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer and name:
                return name, module
        raise ValueError(f"{what} {type(layer).__name__} is not a submodule of the model")
    raise ValueError(f"{what} must be a submodule name (str) or the module itself, got {type(layer).__name__}")


def _check_options(variant: str, window: int, mode: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown infoCAM variant {variant!r}; choose one of {VARIANTS}")
    if mode not in MODES:
        raise ValueError(f"unknown window mode {mode!r}; choose one of {MODES}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int (k of the k×k box sum), got {window!r}")


def _class_indices(class_idx, n: int, num_classes: int, device) -> torch.Tensor:
    if isinstance(class_idx, bool):
        raise ValueError("class_idx must be an int or one int per sample, not a bool")
    if isinstance(class_idx, int):
        idx = torch.full((n,), class_idx, dtype=torch.long, device=device)
    else:
        idx = torch.as_tensor(class_idx, device=device)
        if idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise ValueError(f"class_idx must hold integers, got dtype {idx.dtype}")
        idx = idx.long().reshape(-1)
        if len(idx) != n:
            raise ValueError(f"class_idx holds {len(idx)} indices but the batch has {n} samples; "
                             "pass one int or one index per sample")
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise ValueError(f"class indices must lie in [0, {num_classes - 1}], got "
                         f"min {int(idx.min())}, max {int(idx.max())}")
    return idx


def class_weights(weight: torch.Tensor, idx: torch.Tensor, variant: str = "mean-others",
                  logits: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample weight vectors v (N, C) with map = Σ_k v_k F_k before the window.

    ``weight`` is the head's (K, C) matrix, ``idx`` the (N,) class indices; ``logits`` (N, K)
    pick y_min for ``"least-likely"``.
    """
    w_y = weight[idx]
    if variant == "none":
        return w_y
    if variant == "mean-others":
        K = weight.shape[0]
        return (K * w_y - weight.sum(0, keepdim=True)) / (K - 1)
    return w_y - weight[logits.argmin(1)]


def window_sum(maps: torch.Tensor, window: int, mode: str = "same") -> torch.Tensor:
    """k×k box sum (an all-ones convolution) of maps (..., h, w) as k − 1 shifted adds per axis.

    ``mode="same"`` pads ⌊(k−1)/2⌋ before and ⌊k/2⌋ after (output cell i sums cells
    i − ⌊(k−1)/2⌋ … i + ⌊k/2⌋; for even k the extra cell is after i, as ``F.conv2d(padding="same")``);
    ``mode="faithful"`` pads k − 1 on every side (the original code's full convolution).
    """
    k = window
    if k == 1:
        return maps
    if mode == "same":
        x = F.pad(maps, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2))
    else:
        x = F.pad(maps, (k - 1, k - 1, k - 1, k - 1))
    w_out, h_out = x.shape[-1] - k + 1, x.shape[-2] - k + 1
    rows = sum(x[..., :, j : j + w_out] for j in range(k))
    return sum(rows[..., i : i + h_out, :] for i in range(k))


def class_maps(features: torch.Tensor, weight: torch.Tensor, class_idx, logits: torch.Tensor | None = None,
               variant: str = "mean-others", window: int = 3, mode: str = "same") -> torch.Tensor:
    """CAM / infoCAM maps (N, h', w') of class ``class_idx`` from features and the head weight.

    ``features`` (N, C, h, w) feed global average pooling and a linear head with ``weight`` (K, C);
    ``class_idx`` is one int or one index per sample. ``variant`` and ``window``/``mode`` as in the
    module docstring (``variant="none", window=1`` is CAM). ``logits`` (N, K) pick y_min for
    ``"least-likely"``; if omitted they are recomputed as GAP(F) @ weightᵀ (the bias does not change
    the argmin). Used in chapters 4 and 5 (cached features of frozen backbones) and by :class:`CAM`.
    """
    _check_options(variant, window, mode)
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if hasattr(features, "shape") else type(features).__name__
        raise ValueError(f"features must be a (N, C, h, w) tensor, got {shape}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        shape = tuple(weight.shape) if hasattr(weight, "shape") else type(weight).__name__
        raise ValueError(f"weight must be the head's (K, C) matrix, got {shape}")
    if features.shape[1] != weight.shape[1]:
        raise ValueError(f"features have {features.shape[1]} channels but the head weight expects "
                         f"{weight.shape[1]} (weight shape {tuple(weight.shape)}): pick the layer feeding the pooling")
    if variant != "none" and weight.shape[0] < 2:
        raise ValueError("infoCAM subtracts other classes' maps: the linear head needs >= 2 outputs")
    if torch.isnan(features).any():
        raise ValueError("the feature map contains NaN; check the input and weights")
    weight = weight.detach().to(features.device)
    n, K = features.shape[0], weight.shape[0]
    idx = _class_indices(class_idx, n, K, features.device)
    if variant == "least-likely":
        if logits is None:
            logits = features.mean((2, 3)) @ weight.T
        if tuple(logits.shape) != (n, K):
            raise ValueError(f"logits have shape {tuple(logits.shape)}; expected ({n}, {K})")
        logits = logits.to(features.device)
    v = class_weights(weight, idx, variant, logits).to(features.dtype)
    return window_sum(torch.einsum("nc,nchw->nhw", v, features), window, mode)


class CAM:
    """Class activation map extractor M_y = Σ_k w_{y,k} F_k (Zhou et al. 2016), hook-based.

    ``model`` must end in global average pooling followed by the linear layer ``fc_layer``;
    ``target_layer`` is the module whose output is the feature map F (N, C, h, w). The maps come
    from :func:`class_maps` with this extractor's variant and window (CAM: none, 1).
    """

    variant, window, mode = "none", 1, "same"

    def __init__(self, model: nn.Module, target_layer, fc_layer):
        self.model = model
        self.target_name, self.target_layer = _resolve(model, target_layer, "target layer")
        self.fc_name, fc = _resolve(model, fc_layer, "fc layer")
        if not isinstance(fc, nn.Linear):
            raise ValueError(
                f"fc layer {self.fc_name!r} is a {type(fc).__name__}, not nn.Linear: CAM and infoCAM need a "
                "model whose head is a linear layer after global average pooling"
            )
        if self.variant != "none" and fc.out_features < 2:
            raise ValueError("infoCAM subtracts other classes' maps: the linear head needs >= 2 outputs")
        self.fc = fc
        self._handles: list = []
        self._features: torch.Tensor | None = None
        self._input_size: tuple[int, int] | None = None

    # -- hooks -------------------------------------------------------------------------------
    def __enter__(self):
        self._handles = [
            self.target_layer.register_forward_hook(self._store_features),
            self.model.register_forward_pre_hook(self._store_input_size),
        ]
        return self

    def __exit__(self, *exc):
        self.remove_hooks()
        return False

    def remove_hooks(self) -> None:
        """Remove the hooks (done automatically when the ``with`` block exits)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._features = None

    def _store_features(self, module, inputs, output):
        self._features = output.detach()

    def _store_input_size(self, module, inputs):
        if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].dim() >= 3:
            self._input_size = tuple(inputs[0].shape[-2:])

    # -- maps --------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def __call__(self, class_idx, logits: torch.Tensor | None = None, upsample=False) -> torch.Tensor:
        """Maps (N, h, w) of class ``class_idx`` (one int, or one per sample) for the last forward.

        ``logits`` (the model's output) picks y_min for ``"least-likely"``; if omitted they are
        recomputed from the stored features. ``upsample=True`` stretches the maps to the input's
        size (bicubic); a (H, W) tuple stretches them to that size.
        """
        if not self._handles:
            raise RuntimeError(f"use the extractor as a context manager: `with {type(self).__name__}(...) as cam:` "
                               "then run the model inside the block")
        if self._features is None:
            raise RuntimeError(f"no features stored: run the model inside the `with` block before calling the "
                               f"extractor (target layer {self.target_name!r})")
        feats = self._features
        if feats.dim() != 4:
            raise ValueError(f"target layer {self.target_name!r} outputs shape {tuple(feats.shape)}; "
                             "expected (N, C, h, w) feature maps")
        if feats.shape[1] != self.fc.in_features:
            raise ValueError(f"target layer {self.target_name!r} has {feats.shape[1]} channels but fc layer "
                             f"{self.fc_name!r} expects {self.fc.in_features}: pick the layer feeding the pooling")
        if self.variant == "least-likely" and logits is None:
            logits = self.fc(feats.mean((2, 3))).detach()
        maps = class_maps(feats, self.fc.weight.detach(), class_idx, logits,
                          variant=self.variant, window=self.window, mode=self.mode)
        if upsample is not False:
            size = self._input_size if upsample is True else tuple(upsample)
            if size is None:
                raise ValueError("upsample=True needs the input size, which was not recorded; pass (H, W)")
            maps = F.interpolate(maps.unsqueeze(1), size=size, mode="bicubic", align_corners=False).squeeze(1)
        return maps


class InfoCAM(CAM):
    """infoCAM extractor (see the module docstring): CAM with a class subtraction and a k×k window."""

    def __init__(self, model: nn.Module, target_layer, fc_layer, variant: str = "mean-others",
                 window: int = 3, mode: str = "same"):
        _check_options(variant, window, mode)
        self.variant, self.window, self.mode = variant, window, mode
        super().__init__(model, target_layer, fc_layer)


def model_class_maps(model: nn.Module, X: torch.Tensor, class_idx, variant: str = "none", window: int = 1,
                     mode: str = "same", target_layer="features", fc_layer="fc",
                     batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps (N, h, w) and logits (N, K) of a GAP network over ``X`` in batches, on the model's device.

    ``class_idx`` holds one class per sample (e.g. the true labels: the GT-known protocol). Returns
    CPU tensors. Used in chapter 4 (cluttered digits).
    """
    device = next(model.parameters()).device
    class_idx = torch.as_tensor(class_idx)
    maps, logits = [], []
    with torch.no_grad(), InfoCAM(model, target_layer, fc_layer, variant=variant, window=window, mode=mode) as cam:
        for i in range(0, len(X), batch_size):
            lg = model(X[i : i + batch_size].to(device))
            maps.append(cam(class_idx[i : i + batch_size].to(device), lg).cpu())
            logits.append(lg.cpu())
    return torch.cat(maps), torch.cat(logits)


def cached_class_maps(features, weight: torch.Tensor, class_idx, logits: torch.Tensor | None = None,
                      variant: str = "mean-others", window: int = 3, mode: str = "same",
                      batch_size: int = 256) -> torch.Tensor:
    """:func:`class_maps` over cached features (N, C, h, w) (a float16 numpy array or memmap) in batches.

    Each batch is cast to float32 on ``weight``'s device; maps come back on the CPU. Used in
    chapters 4 and 5 (frozen-backbone features from :func:`infocam.features.extract_features`).
    """
    device = weight.device
    class_idx = torch.as_tensor(class_idx)
    out = []
    for i in range(0, len(features), batch_size):
        feats = torch.as_tensor(np.asarray(features[i : i + batch_size], dtype=np.float32), device=device)
        lg = None if logits is None else logits[i : i + batch_size].to(device)
        out.append(class_maps(feats, weight, class_idx[i : i + batch_size].to(device), lg,
                              variant=variant, window=window, mode=mode).cpu())
    return torch.cat(out) if out else torch.zeros(0)


__all__ = ["CAM", "InfoCAM", "MODES", "VARIANTS", "cached_class_maps", "class_maps", "class_weights",
           "model_class_maps", "window_sum"]
