"""The one training engine of the book: :func:`fit`, on any device, resumable, distributed.

Two data paths share one loop:

* **in-memory tensors** ``fit(model, X, y, ...)`` — MNIST, cached features/activations: a random
  permutation and tensor indexing per batch (no per-sample Dataset, no workers), so the loop runs
  at the speed of forward + backward + step;
* **a** ``torch.utils.data.Dataset`` ``fit(model, dataset, None, ...)`` — image folders that do not
  fit in memory (:class:`infocam.data.images.ImageDataset`): a ``DataLoader`` with worker processes,
  pinned memory on CUDA and a ``DistributedSampler`` under ``torchrun``.

What the loop adds to plain SGD, all keyword arguments whose defaults keep the old behaviour (same
seed → bit-identical numbers on CPU): ``device`` and ``precision`` (:mod:`infocam.device`),
parameter groups (``head_lr_mult=10`` for the new layers, as in the paper, or explicit groups), SGD
with Nesterov momentum or Adam, a step or cosine schedule, a checkpoint after every epoch written
atomically, ``resume`` that ends with exactly the weights and losses of an uninterrupted run, and
DistributedDataParallel when a process group is initialised (:func:`init_distributed`: NCCL on
GPUs, Gloo on CPUs), with losses reduced across ranks. Gradients are zeroed every step (the
original MI code never did). Used in chapters 2–5 and by ``infocam train``.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from infocam.device import autocast, check_precision, grad_scaler, resolve_device
from infocam.utils import atomic_write_bytes, progress, seed_everything

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = (None, "step", "cosine")
CHECKPOINT_FORMAT = "infocam-train-v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed here (another run's, or unreadable); the message says why."""


# -- distributed ---------------------------------------------------------------------------------


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str | torch.device = "auto") -> torch.device:
    """Join the process group that ``torchrun`` describes (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``).

    NCCL when the device is CUDA (each rank on ``cuda:LOCAL_RANK``), Gloo on CPU. Without torchrun's
    variables (a single process) it only resolves ``device``. Returns this rank's device.
    """
    import torch.distributed as dist

    size = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if size > 1 and dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = resolve_device(f"cuda:{local}")
        torch.cuda.set_device(dev)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return dev


def _all_reduce_sum(values: list[float], dev: torch.device) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=dev if dev.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


# -- optimiser, parameter groups, schedule ---------------------------------------------------------


def parameter_groups(model: nn.Module, lr: float, *, head=None, head_lr_mult: float = 1.0,
                     param_groups: Sequence[dict] | None = None) -> list[dict]:
    """Optimiser parameter groups over the trainable parameters of ``model``.

    Default: one group at ``lr``. ``head_lr_mult`` ≠ 1 puts the parameters whose names start with
    ``head`` (a name or list of names of submodules; default ``model.new_layers``, which the book's
    backbones define) in a second group at ``lr * head_lr_mult`` — the paper's 10× for new layers.
    ``param_groups`` gives explicit torch-style groups; a group's ``lr_mult`` scales ``lr``.
    """
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    if param_groups is not None:
        groups = []
        for g in param_groups:
            g = dict(g)
            g["params"] = [p for p in g["params"] if p.requires_grad]
            g["lr"] = g.get("lr", lr * g.get("lr_mult", 1.0))
            groups.append(g)
        return groups
    if head_lr_mult == 1.0:
        return [{"params": [p for _, p in trainable]}]
    names = getattr(model, "new_layers", None) if head is None else head
    if names is None:
        raise ValueError("head_lr_mult needs the new layers: pass head='fc' (or a list of submodule names), "
                         "or give the model a new_layers attribute")
    prefixes = (names,) if isinstance(names, str) else tuple(names)
    is_new = [any(n == pre or n.startswith(pre + ".") for pre in prefixes) for n, _ in trainable]
    if not any(is_new):
        raise ValueError(f"head {prefixes} matches no trainable parameter of {type(model).__name__}; "
                         f"names start with e.g. {sorted({n.split('.')[0] for n, _ in trainable})[:8]}")
    old = [p for (_, p), new in zip(trainable, is_new) if not new]
    new = [p for (_, p), new in zip(trainable, is_new) if new]
    return ([{"params": old, "lr": lr}] if old else []) + [{"params": new, "lr": lr * head_lr_mult}]


def make_optimizer(groups: list[dict], optimizer: str, lr: float, momentum: float, weight_decay: float,
                   nesterov: bool) -> torch.optim.Optimizer:
    """SGD (optionally Nesterov) or Adam over ``groups``."""
    if optimizer == "sgd":
        if nesterov and momentum <= 0:
            raise ValueError(f"nesterov=True needs momentum > 0 (got momentum={momentum})")
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if optimizer == "adam":
        if nesterov:
            raise ValueError("nesterov applies to optimizer='sgd' only")
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {optimizer!r}; choose 'sgd' or 'adam'")


def make_schedule(opt: torch.optim.Optimizer, schedule: str | None, epochs: int, step_size: int, gamma: float):
    """Per-epoch learning-rate schedule: none, ``"step"`` (×``gamma`` every ``step_size`` epochs) or ``"cosine"``."""
    if schedule is None:
        return None
    if schedule == "step":
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        return torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    raise ValueError(f"unknown schedule {schedule!r}; choose None, 'step' or 'cosine'")


# -- checkpoints -----------------------------------------------------------------------------------


def _rng_state(gen: torch.Generator | None, dev: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if gen is not None:
        state["batches"] = gen.get_state()
    if dev.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


def _set_rng_state(state: dict, gen: torch.Generator | None, dev: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if gen is not None and "batches" in state:
        gen.set_state(state["batches"])
    if dev.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], dev)


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write a checkpoint atomically (temp file + rename): an interrupted write leaves the previous one."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, fingerprint: dict | None = None) -> dict:
    """Read a checkpoint of :func:`fit`; with ``fingerprint``, refuse one written by another run."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated, not a torch file, ...
        raise CheckpointError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); delete it "
                              "to start afresh") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of infocam.train.fit; delete it or choose another "
                              "output folder")
    if fingerprint is not None and state["fingerprint"] != fingerprint:
        old = state["fingerprint"]
        diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        detail = "; ".join(f"{k}: checkpoint {old.get(k)!r} vs now {fingerprint.get(k)!r}" for k in diff[:4])
        raise CheckpointError(f"checkpoint {path} belongs to another run ({detail}); resume it with the same "
                              "settings, or delete it / choose another output folder to start afresh")
    return state


def _fingerprint(model: nn.Module, settings: dict) -> dict:
    shapes = ",".join(f"{n}:{tuple(p.shape)}" for n, p in model.state_dict().items())
    return {"model": type(model).__name__, "tensors": hashlib.sha256(shapes.encode()).hexdigest()[:16],
            **settings}


# -- the loop --------------------------------------------------------------------------------------


def iterate_minibatches(n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True):
    """Index tensors of a shuffled pass over ``range(n)`` (the last batch may be smaller)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _is_dataset(X) -> bool:
    return isinstance(X, torch.utils.data.Dataset) and not isinstance(X, torch.Tensor)


def _loader_batches(dataset, batch_size: int, epoch: int, seed: int, rank: int, size: int,
                    num_workers: int, dev: torch.device, drop_last: bool):
    """(inputs, labels, global batch count) of one epoch over a Dataset; the order depends on (seed, epoch) only."""
    from torch.utils.data import DataLoader, DistributedSampler

    if isinstance(dataset, DataLoader):
        if hasattr(dataset.sampler, "set_epoch"):
            dataset.sampler.set_epoch(epoch)
        loader = dataset
    else:
        # One process uses the same sampler (one replica), so its batches are the union of the ranks'
        # batches under torchrun and both runs follow the same loss curve.
        sampler = DistributedSampler(dataset, num_replicas=size, rank=rank, shuffle=True, seed=seed,
                                     drop_last=drop_last)
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch_size // size, sampler=sampler,
                            generator=torch.Generator().manual_seed(seed * 100_003 + epoch),
                            num_workers=num_workers, pin_memory=dev.type == "cuda", drop_last=drop_last,
                            persistent_workers=False)
    for batch in loader:
        xb, yb = batch[0], batch[1]
        # every rank's batch has the same size (DistributedSampler pads), so the global batch is size × local
        yield xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True).long(), len(yb) * size


def fit(
    model: nn.Module,
    X,
    y: torch.Tensor | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.01,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    optimizer: str = "sgd",
    seed: int = 0,
    desc: str = "training",
    nesterov: bool = False,
    head=None,
    head_lr_mult: float = 1.0,
    param_groups: Sequence[dict] | None = None,
    schedule: str | None = None,
    step_size: int = 60,
    gamma: float = 0.1,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    num_workers: int = 0,
    drop_last: bool = False,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    run_key: str | None = None,
    on_epoch: Callable[[int, list[float], nn.Module], None] | None = None,
) -> list[float]:
    """Train ``model`` in place; returns the mean training loss of each epoch.

    Data: tensors ``X`` (N, ...) and labels ``y`` (N,), or a ``Dataset`` ``X`` yielding
    ``(image, label, ...)`` with ``y=None`` (read by a ``DataLoader`` with ``num_workers`` worker
    processes, pinned memory on CUDA, ``drop_last`` dropping an incomplete last batch; its order
    depends on ``seed`` and the epoch only, so a resumed run reads the same batches).
    Optimiser: ``optimizer`` ``"sgd"`` (``momentum``, ``nesterov``) or ``"adam"``, ``weight_decay``,
    groups from :func:`parameter_groups` (``head``, ``head_lr_mult``, ``param_groups``), per-epoch
    ``schedule`` (``"step"``: ×``gamma`` every ``step_size`` epochs; ``"cosine"``).
    ``device``/``precision`` as in :mod:`infocam.device`; the model and in-memory tensors move once.
    ``checkpoint``: a file written atomically after every epoch; ``resume=True`` continues from it
    (if present) and finishes with the same weights and losses as an uninterrupted run; a checkpoint
    of other settings (or another ``run_key``) is refused. ``on_epoch(epoch, history, model)`` runs
    after each epoch's checkpoint. Inside a process group (:func:`init_distributed`) the model is
    wrapped in DistributedDataParallel, each rank takes ``batch_size / world size`` samples of every
    batch, and losses are reduced across ranks; only rank 0 writes the checkpoint.
    Seeds torch/NumPy/Python from ``seed`` so two runs with the same seed agree on the same machine.
    """
    dataset_path = _is_dataset(X)
    if dataset_path and y is not None:
        raise ValueError("with a Dataset as X, pass y=None (labels come from the dataset)")
    if not dataset_path and (y is None or len(X) != len(y)):
        raise ValueError(f"X has {len(X)} samples but y has {'none' if y is None else len(y)}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1 (got {epochs}, {batch_size})")
    dev = resolve_device(device)
    check_precision(precision, dev)
    rank, size = world()
    if batch_size % size:
        raise ValueError(f"world size {size} does not divide batch_size {batch_size}; use a batch size that is "
                         f"a multiple of {size} (each process takes batch_size / world size samples)")
    seed_everything(seed)
    gen = None if dataset_path else torch.Generator().manual_seed(seed)
    model.to(dev)
    opt = make_optimizer(parameter_groups(model, lr, head=head, head_lr_mult=head_lr_mult, param_groups=param_groups),
                         optimizer, lr, momentum, weight_decay, nesterov)
    sched = make_schedule(opt, schedule, epochs, step_size, gamma)
    scaler = grad_scaler(dev, precision)
    fingerprint = _fingerprint(model, dict(
        run_key=run_key, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
        optimizer=optimizer, seed=seed, nesterov=nesterov, head_lr_mult=head_lr_mult, schedule=schedule,
        step_size=step_size, gamma=gamma, precision=precision, world_size=size,
        data=type(X).__name__ if dataset_path else f"{tuple(X.shape)}"))
    history: list[float] = []
    start = 0
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, fingerprint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history, start = list(state["history"]), state["epoch"]
        _set_rng_state(state["rng"], gen, dev)
    if not dataset_path:
        X, y = X.to(dev), y.to(dev).long()
    net = model
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    model.train()
    for epoch in progress(range(start, epochs), desc=desc, initial=start, total=epochs,
                          **({"disable": True} if rank else {})):
        total, count = 0.0, 0
        if dataset_path:
            batches = _loader_batches(X, batch_size, epoch, seed, rank, size, num_workers, dev, drop_last)
        else:
            batches = _tensor_batches(X, y, batch_size, gen, rank, size)
        for xb, yb, global_n in batches:
            opt.zero_grad(set_to_none=True)
            with autocast(dev, precision):
                loss = loss_fn(net(xb), yb)
            # DDP averages gradients over ranks; weighting each rank's mean by its share of the global
            # batch makes that average the gradient of the global batch mean, also for uneven shards.
            scaled = loss * (len(yb) * size / global_n) if size > 1 else loss
            if scaler.is_enabled():
                scaler.scale(scaled).backward()
                scaler.step(opt)
                scaler.update()
            else:
                scaled.backward()
                opt.step()
            total += loss.item() * len(yb)
            count += len(yb)
        if size > 1:
            total, count = _all_reduce_sum([total, count], dev)
        history.append(total / count)
        if sched is not None:
            sched.step()
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, {
                "format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "epoch": epoch + 1, "history": history,
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None, "scaler": scaler.state_dict(),
                "rng": _rng_state(gen, dev)})
        if on_epoch is not None:
            on_epoch(epoch, list(history), model)
    model.eval()
    return history


def _tensor_batches(X, y, batch_size, gen, rank, size):
    """(inputs, labels, global batch count) of one shuffled pass; rank r takes its shard of each batch."""
    for idx in iterate_minibatches(len(X), batch_size, gen):
        if size > 1:
            if len(idx) < size:  # a last batch too small to give every rank a sample is dropped
                continue
            local = torch.tensor_split(idx, size)[rank]
            yield X[local], y[local], len(idx)
        else:
            yield X[idx], y[idx], len(idx)


@torch.no_grad()
def predict_logits(model: nn.Module, X, batch_size: int = 1024, *, device: str | torch.device | None = None,
                   precision: str = "fp32", num_workers: int = 0) -> torch.Tensor:
    """Logits of ``model`` in eval mode over tensors ``X`` or a Dataset (``(image, label, ...)`` items).

    Without ``device`` the model runs where it is and the logits stay there (tensor input); with one,
    the model moves there once and the logits come back to the CPU in float32.
    """
    model.eval()
    if device is None and not _is_dataset(X):
        return torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
    dev = resolve_device(device or next(model.parameters()).device)
    model.to(dev)
    if _is_dataset(X):
        from torch.utils.data import DataLoader

        batches = (b[0] for b in DataLoader(X, batch_size=batch_size, num_workers=num_workers,
                                            pin_memory=dev.type == "cuda"))
    else:
        batches = (X[i : i + batch_size] for i in range(0, len(X), batch_size))
    out = []
    for xb in batches:
        with autocast(dev, precision):
            out.append(model(xb.to(dev, non_blocking=True)).float().cpu())
    return torch.cat(out)


def per_class_accuracy(pred, y, num_classes: int) -> np.ndarray:
    """Accuracy of each class (NaN for a class absent from ``y``)."""
    pred, y = np.asarray(pred), np.asarray(y)
    out = np.full(num_classes, np.nan)
    for k in range(num_classes):
        mask = y == k
        if mask.any():
            out[k] = float((pred[mask] == k).mean())
    return out
