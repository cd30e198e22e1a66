"""Map collection: the maps of every catalogue method for the ground-truth class, in one pass over
batches, from cached final features (frozen backbones, fine-tuned tops) or from a network over a
Dataset (``infocam train``, chapter 4's digits), on any device. Maps come back as float32 NumPy
arrays keyed by method id, with whether each image's top-1 class was right.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from infocam.localisation.methods import Method


def _cached_only(methods) -> list[Method]:
    """The methods, refusing those that need the network (gradients) rather than cached features."""
    methods = list(methods)
    need = [m.id for m in methods if m.needs_model]
    if need:
        raise ValueError(f"{need} need the network (gradients), not cached features: use maps_from_model")
    return methods


def collect(batches: Iterable, weight: torch.Tensor, methods) -> dict[str, np.ndarray]:
    """Maps (N, h', w') of each method over ``batches`` of ``(features (n, C, h, w), class_idx (n,),
    logits (n, K))``; ``weight`` is the head's (K, C) matrix."""
    methods = _cached_only(methods)
    out = {m.id: [] for m in methods}
    weight = weight.detach().float()
    for feats, idx, logits in batches:
        feats = torch.as_tensor(feats).float()
        idx, logits = torch.as_tensor(idx), torch.as_tensor(logits).float()
        for m in methods:
            out[m.id].append(m.maps(feats, weight.to(feats.device), idx.to(feats.device), logits.to(feats.device))
                             .cpu().numpy().astype(np.float32))
    return {k: np.concatenate(v) for k, v in out.items()}


def feature_batches(features, labels, weight, bias=None, batch_size: int = 256, transform=None, index=None):
    """``(features, labels, logits)`` batches of cached features (NumPy/memmap ok), for :func:`collect`.

    ``index`` (sorted positions) selects rows of ``features``/``labels`` (a memmap reads only
    those); ``transform`` maps a float32 batch to the final conv features (e.g. a fine-tuned
    Lite0 top applied to cached trunk activations); logits are GAP(features) @ weightᵀ + bias.
    """
    weight = weight.detach().float()
    index = np.arange(len(labels)) if index is None else np.asarray(index)
    for start in range(0, len(index), batch_size):
        rows = index[start : start + batch_size]
        x = torch.from_numpy(np.asarray(features[rows], dtype=np.float32))
        with torch.no_grad():
            f = transform(x) if transform is not None else x
            logits = f.mean((2, 3)) @ weight.T
            if bias is not None:
                logits = logits + bias.detach().float()
        yield f, np.asarray(labels)[rows], logits


def maps_from_features(features, labels, weight, bias, methods, transform=None, index=None,
                       batch_size: int = 256) -> tuple[dict, np.ndarray]:
    """Maps of every method for the true class from cached features, and whether each image's
    top-1 class is right (positions ``index``; all rows if None)."""
    hits = []

    def batches():
        for f, y, logits in feature_batches(features, labels, weight, bias, batch_size, transform, index):
            hits.append(logits.argmax(1).numpy() == y)
            yield f, y, logits

    maps = collect(batches(), weight, methods)
    return maps, (np.concatenate(hits) if hits else np.zeros(0, dtype=bool))


def maps_from_model(model, data, methods, *, device="cpu", head: str = "fc", batch_size: int = 64,
                    num_workers: int = 0, precision: str = "fp32") -> dict:
    """Maps of every method for the true class from a GAP network (``model.features`` → pooling →
    ``model.<head>``) over ``data``: a Dataset yielding ``(x, y)`` or ``(x, y, box)``, or a pair of
    tensors ``(X, y)``. Returns ``{"maps": {id: (N, h, w)}, "correct", "labels", "boxes"}`` (boxes
    None when the data has none)."""
    from infocam.device import autocast

    methods = list(methods)
    dev = torch.device(device)
    model.eval().to(dev)
    if isinstance(data, tuple):
        data = torch.utils.data.TensorDataset(*data)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=num_workers,
                                         pin_memory=dev.type == "cuda")
    fc = getattr(model, head)
    maps = {m.id: [] for m in methods}
    correct, labels, boxes = [], [], []
    for batch in loader:
        x, y = batch[0].to(dev, non_blocking=True), batch[1].to(dev)
        with torch.no_grad():
            with autocast(dev, precision):
                feats = model.features(x)
            feats = feats.float()
            logits = fc(feats.mean(dim=(2, 3))).float()
        for m in methods:
            out = m.model_maps(model, x, y, head) if m.needs_model else m.maps(feats, fc.weight.float(), y, logits)
            maps[m.id].append(out.detach().float().cpu().numpy())
        correct.append((logits.argmax(1) == y).cpu().numpy())
        labels.append(y.cpu().numpy())
        if len(batch) > 2:
            boxes.append(np.asarray(batch[2]))
    return {"maps": {k: np.concatenate(v) for k, v in maps.items()}, "correct": np.concatenate(correct),
            "labels": np.concatenate(labels), "boxes": np.concatenate(boxes) if boxes else None}


__all__ = ["collect", "feature_batches", "maps_from_features", "maps_from_model"]
