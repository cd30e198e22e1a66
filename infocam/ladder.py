"""The training ladder: one network with more and more of it trained, under one budget rule.

Rungs (:data:`RUNGS`): ``linear`` (frozen EfficientNet-Lite0, a new linear head on its pooled
features), ``head`` and ``stage7`` (the 1280-channel conv, resp. the last MBConv stage and that
conv, fine-tuned with a new head on cached activations, :func:`infocam.finetune.finetune_lite0`) and
``all`` (the whole network from images, :func:`infocam.finetune.train_whole_lite0`). Every rung gets
the same budget: SGD with Nesterov momentum 0.9, a cosine schedule, ``epochs`` epochs, ``lr`` with
``head_lr_mult`` × ``lr`` on the new head. Any dataset runs it from the stage-6 activations the
feature cache holds (:func:`inputs`); :func:`rung_maps` computes a trained rung's maps. Chapter 5
runs it on the birds and on Tiny-ImageNet (whose new heads start from the restricted ImageNet head).
"""

from __future__ import annotations

import time

import numpy as np

from infocam import finetune

RUNGS = ("linear", "head", "stage7", "all")
_INPUT = {"linear": "head", "head": "head", "stage7": "stage7"}  # which cached activations a rung reads


def check_rungs(rungs) -> list[str]:
    """The rung names as a list, or one error naming the bad ones and the valid rungs."""
    rungs = list(rungs)
    bad = [r for r in rungs if r not in RUNGS]
    if bad or not rungs:
        raise ValueError(f"unknown ladder rung(s) {bad}: choose from {list(RUNGS)}" if bad else
                         f"the ladder needs at least one rung from {list(RUNGS)}")
    return rungs


def inputs(acts_cut, rungs, cut: str = "stage6") -> dict[str, np.ndarray]:
    """The activations each rung of ``rungs`` reads (key → (N, C, h, w) float16), advanced once from
    the cached ``cut`` activations through the frozen stages (``"head"`` also feeds the linear rung)."""
    keys = {"head"} | {_INPUT[r] for r in check_rungs(rungs) if r != "all"}
    return {k: finetune.advance(acts_cut, cut, k) for k in sorted(keys)}


def train_rung(rung: str, *, acts=None, pooled=None, labels, num_classes: int, epochs: int, batch_size: int,
               lr: float, head_lr_mult: float, weight_decay: float, seed: int, device="cpu", init=None,
               on_epoch=None, paths=None, precision: str = "fp32"):
    """Train one rung with one seed; returns ``(transform, head, key)`` — the maps are
    ``head`` read on ``transform(acts[key])`` — or, for ``"all"``, the trained network.

    ``acts``: key → activations of the training images (:func:`inputs`), for ``head`` / ``stage7``;
    ``pooled`` (N, 1280): their pooled frozen features, for ``linear``; ``paths``: the training
    images, for ``all``. ``init`` = (weight (K, 1280), bias (K,)) starts the new head from given rows
    (None: from scratch). ``on_epoch(epoch, history, top)`` is called after each epoch of ``head`` /
    ``stage7`` (to keep snapshots for model selection). ``precision``: the passes of the rungs that
    train convolutions (``head``, ``stage7``, ``all``; e.g. :func:`infocam.train.fast_precision`); the
    linear rung, one matrix product on pooled features, trains in float32.
    """
    check_rungs([rung])
    if on_epoch is not None and rung not in ("head", "stage7"):
        raise ValueError(f"on_epoch is called by the head and stage7 rungs only, not {rung!r}")
    budget = dict(epochs=epochs, batch_size=batch_size, weight_decay=weight_decay, seed=seed, device=device)
    if rung == "linear":
        if pooled is None:
            raise ValueError("the linear rung trains on pooled frozen features: pass pooled=(N, 1280)")
        from infocam.heads import train_linear_head

        head = train_linear_head(pooled, labels, num_classes, init=init, optimizer="sgd", momentum=0.9, nesterov=True,
                                 schedule="cosine", lr=lr * head_lr_mult, desc=f"linear rung seed {seed}", **budget)
        return finetune.frozen_top("head").features, head.cpu(), "head"
    if rung == "all":
        if paths is None:
            raise ValueError("the all rung trains the whole network from images: pass paths=[training images]")
        model, _ = finetune.train_whole_lite0(paths, labels, num_classes, lr=lr, head_lr_mult=head_lr_mult, init=init,
                                              precision=precision, **budget)
        return model
    if acts is None or rung not in acts:
        raise ValueError(f"the {rung} rung trains on the activations that feed it: pass acts=inputs(...) with key {rung!r}")
    top = finetune.finetune_lite0(acts[rung], labels, num_classes, trainable_from=rung, lr=lr, head_lr_mult=head_lr_mult,
                                  on_epoch=on_epoch, init=init, precision=precision, **budget)
    return top.features, top._fc, rung


def train_ladder(rungs, seeds, *, on_epoch: dict | None = None, **train) -> tuple[dict, dict]:
    """Every rung × seed with :func:`train_rung` (``train``: its keyword arguments but ``rung``,
    ``seed`` and ``on_epoch``); returns ``{(rung, seed): net}`` and ``{(rung, seed): seconds}``
    (the wall time of each training). ``on_epoch``: (rung, seed) → callback, for the nets to watch.
    Every rung name is checked before anything trains."""
    rungs, on_epoch = check_rungs(rungs), on_epoch or {}
    nets, seconds = {}, {}
    for rung in rungs:
        for s in seeds:
            started = time.time()
            nets[rung, s] = train_rung(rung, seed=s, on_epoch=on_epoch.get((rung, s)), **train)
            seconds[rung, s] = time.time() - started
    return nets, seconds


def rung_maps(net, methods, *, acts=None, labels, index=None, paths=None, device="cpu"):
    """Maps of ``methods`` for the true class and top-1 hits of one trained rung on images ``index``
    (all if None): from ``acts[key]`` (:func:`inputs` of these images) through the rung's transform,
    or for the whole network (``"all"``) from the image files ``paths``."""
    from infocam import localisation as L

    labels = np.asarray(labels)
    index = np.arange(len(labels)) if index is None else np.asarray(index)
    if not isinstance(net, tuple):
        data = finetune.image_dataset([paths[i] for i in index], labels[index])
        out = L.maps_from_model(net, data, methods, device=device)
        return out["maps"], out["correct"]
    transform, head, key = net
    return L.maps_from_features(acts[key], labels, head.weight, head.bias, methods, transform, index=index)


__all__ = ["RUNGS", "check_rungs", "inputs", "rung_maps", "train_ladder", "train_rung"]
