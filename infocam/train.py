"""The one training engine of the book: :func:`fit`, on any device, resumable, distributed.

Two data paths share one loop:

* **in-memory tensors** ``fit(model, X, y, ...)`` — MNIST, cached features/activations: a random
  permutation and tensor indexing per batch (no per-sample Dataset, no workers), so the loop runs
  at the speed of forward + backward + step;
* **a** ``torch.utils.data.Dataset`` ``fit(model, dataset, None, ...)`` — image folders that do not
  fit in memory (:class:`infocam.data.images.ImageDataset`): one ``DataLoader`` per run with
  persistent worker processes, pinned memory on CUDA, each rank's share of every global batch
  (:class:`GlobalBatches`) and each image's augmentation seeded by (seed, epoch, image)
  (:class:`SeededItems`).

What the loop adds to plain SGD, all keyword arguments whose defaults keep the old behaviour (same
seed → bit-identical numbers on CPU): ``device`` and ``precision`` (:mod:`infocam.device`),
parameter groups (``head_lr_mult=10`` for the new layers, as in the paper, or explicit groups), SGD
with Nesterov momentum or Adam, a step or cosine schedule, a checkpoint after every epoch written
atomically (and mid-epoch on a stop request, :func:`request_stop`), ``resume`` that ends with
exactly the weights and losses of an uninterrupted run, and DistributedDataParallel when a process
group is initialised (:func:`init_distributed`: NCCL on GPUs, Gloo on CPUs; ``batch_size`` per
process as in torchvision's reference), with losses reduced across ranks. Gradients are zeroed every step (the
original MI code never did). Used in chapters 2–5 and by ``infocam train``.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import threading
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


def load_checkpoint(path: str | os.PathLike, fingerprint: dict | None = None, *, force: bool = False) -> dict:
    """Read a checkpoint of :func:`fit`; with ``fingerprint``, refuse one written by another run.

    The refusal names the settings that differ. ``force`` accepts other settings (not another
    network: its tensors must still fit).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated, not a torch file, ...
        raise CheckpointError(f"cannot read checkpoint {path} ({type(exc).__name__}: {exc}); delete it "
                              "to start afresh") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of infocam.train.fit; delete it or choose another "
                              "output folder")
    if fingerprint is not None:
        old = state["fingerprint"]
        must = ("model", "tensors") if force else tuple(set(old) | set(fingerprint))
        diff = sorted(k for k in must if old.get(k) != fingerprint.get(k))
        if diff:
            detail = "; ".join(f"{k}: checkpoint {old.get(k)!r} vs now {fingerprint.get(k)!r}" for k in diff[:6])
            more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
            hint = ("" if force or {"model", "tensors"} & set(diff) else
                    "; to continue it with the new settings anyway pass --force-resume (fit: force_resume=True)")
            raise CheckpointError(f"checkpoint {path} belongs to another run ({detail}{more}); resume it with the "
                                  f"same settings, or delete it / choose another output folder to start afresh{hint}")
    return state


def _fingerprint(model: nn.Module, settings: dict, run_key=None) -> dict:
    """What a checkpoint must match to be resumed: the model's tensors and the training settings.

    ``run_key`` a dict (``infocam train``: the recipe keys that change the numbers) replaces the
    settings, so a refusal names recipe keys; a string is added to them.
    """
    shapes = ",".join(f"{n}:{tuple(p.shape)}" for n, p in model.state_dict().items())
    found = {"model": type(model).__name__, "tensors": hashlib.sha256(shapes.encode()).hexdigest()[:16]}
    if isinstance(run_key, dict):
        return {**found, **run_key}
    return {**found, "run_key": run_key, **settings}


# -- stopping on request (SIGTERM) -----------------------------------------------------------------

_STOP = threading.Event()


class Stopped(Exception):
    """Training stopped on request (:func:`request_stop`, e.g. SIGTERM) after writing its checkpoint."""

    def __init__(self, epoch: int, step: int, checkpoint):
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (none was asked for)"
        when = f"in epoch {epoch + 1} after {step} batches" if step else f"after epoch {epoch}"
        super().__init__(f"stopped {when}; {where}; run the same command again to resume")


def request_stop(*_signal) -> None:
    """Ask a running :func:`fit` (or the next one) to stop at its next batch boundary (usable as a signal handler)."""
    _STOP.set()


def clear_stop() -> None:
    """Forget a stop request that no :func:`fit` took (e.g. SIGTERM while a finished run was being scored)."""
    _STOP.clear()


# -- the loop --------------------------------------------------------------------------------------


def iterate_minibatches(n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True):
    """Index tensors of a shuffled pass over ``range(n)`` (the last batch may be smaller)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _is_dataset(X) -> bool:
    return isinstance(X, torch.utils.data.Dataset) and not isinstance(X, torch.Tensor)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch: every image of every rank draws its own stream."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class SeededItems(torch.utils.data.Dataset):
    """``dataset`` read by ``(epoch, index)`` keys, each item's random transform seeded by :func:`sample_seed`.

    The random crops and flips then depend on (seed, epoch, image) only: not on the rank, the
    worker count or whether the workers persist, so a resumed or distributed run draws exactly
    what one uninterrupted process draws, and no two images of a global batch share a draw.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if torch.utils.data.get_worker_info() is not None:  # a worker's RNG belongs to the loader alone
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.dataset[index]
        with torch.random.fork_rng(devices=[]):  # in-process: keep the training RNG (dropout, ADL) untouched
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.dataset[index]


class GlobalBatches(torch.utils.data.Sampler):
    """This rank's share of each global batch of one epoch, as lists of ``(epoch, index)`` keys.

    The epoch's order is a permutation drawn from (seed, epoch); global batch b is its slice
    ``[b·G, (b+1)·G)`` with G = per-rank batch × world size, split into contiguous equal shares (the
    last batch as evenly as it goes). One process with batch G therefore sees exactly the union of
    the ranks' batches. :meth:`set_epoch` picks the epoch and the first batch (resume mid-epoch).
    """

    def __init__(self, n: int, batch_size: int, rank: int, size: int, seed: int, drop_last: bool):
        self.n, self.batch, self.rank, self.size, self.seed, self.drop_last = n, batch_size, rank, size, seed, drop_last
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def global_sizes(self) -> list[int]:
        """Sizes of the global batches of an epoch (an incomplete last one unless ``drop_last``)."""
        g = self.batch * self.size
        sizes = [g] * (self.n // g) + ([self.n % g] if self.n % g and not self.drop_last else [])
        return [s for s in sizes if s >= self.size]  # a batch too small to give every rank a sample is dropped

    def __len__(self) -> int:
        return max(0, len(self.global_sizes()) - self.start)

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        g = self.batch * self.size
        for b, m in enumerate(self.global_sizes()):
            if b < self.start:
                continue
            share = torch.tensor_split(order[b * g : b * g + m], self.size)[self.rank]
            yield [(self.epoch, int(i)) for i in share]


def fast_precision(device: str | torch.device) -> str:
    """The precision a small convolutional net trains fastest at on ``device`` without a grad scaler.

    ``"bf16"`` (autocast) on a CPU with native bf16 arithmetic (AVX-512 BF16 or AMX): chapter 3's
    LeNet step takes about 0.7 of its float32 time there, and the chapter's numbers stay within a
    fraction of a seed sd. ``"fp32"`` elsewhere: CPUs without it emulate bf16 (slower than float32),
    and GPUs keep float32.
    """
    if torch.device(device).type != "cpu":
        return "fp32"
    native = (getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
              or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    return "bf16" if native else "fp32"


def default_workers(world_size: int | None = None) -> int:
    """Loader workers per process: the cores this process may use, shared among the ranks of this host."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size or 1))
    return max(1, min(8, cores // max(local, 1) - 1))


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
    sync_bn: bool = False,
    channels_last: bool = False,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    force_resume: bool = False,
    run_key: str | dict | None = None,
    on_epoch: Callable[[int, list[float], nn.Module], None] | None = None,
) -> list[float]:
    """Train ``model`` in place; returns the mean training loss of each epoch.

    Data: tensors ``X`` (N, ...) and labels ``y`` (N,), or a ``Dataset`` ``X`` yielding
    ``(image, label, ...)`` with ``y=None`` (read by one ``DataLoader`` for the whole run with
    ``num_workers`` persistent worker processes, pinned memory on CUDA; the order depends on ``seed``
    and the epoch, each image's random transform on (seed, epoch, image): :class:`SeededItems`;
    ``drop_last`` drops an incomplete last batch). ``batch_size`` is per process, as in torchvision's
    reference: under ``torchrun`` the global batch is ``batch_size × world size``.
    Optimiser: ``optimizer`` ``"sgd"`` (``momentum``, ``nesterov``) or ``"adam"``, ``weight_decay``,
    groups from :func:`parameter_groups` (``head``, ``head_lr_mult``, ``param_groups``), per-epoch
    ``schedule`` (``"step"``: ×``gamma`` every ``step_size`` epochs; ``"cosine"``).
    ``device``/``precision`` as in :mod:`infocam.device`; the model and in-memory tensors move once;
    ``channels_last`` stores the model and the image batches channels-last (faster convolutions on
    GPUs, and on CPU for small nets: chapter 3's LeNet step takes half the time); ``sync_bn`` converts BatchNorm to SyncBatchNorm inside a process group.
    ``checkpoint``: a file written atomically after every epoch whose loss is finite, and mid-epoch when a stop is
    requested (:func:`request_stop`, then :class:`Stopped` is raised); ``resume=True`` continues from
    it (if present) and finishes with the same weights and losses as an uninterrupted run; a
    checkpoint of other settings (or another ``run_key``) is refused unless ``force_resume``.
    ``on_epoch(epoch, history, model)`` runs after each epoch's checkpoint. Inside a process group
    (:func:`init_distributed`) the model is wrapped in DistributedDataParallel and losses are
    reduced across ranks; only rank 0 writes the checkpoint. The loss is summed on the device and
    read once per epoch (no host synchronisation per step).
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
    seed_everything(seed)
    gen = None if dataset_path else torch.Generator().manual_seed(seed)
    if size > 1 and sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(parameter_groups(model, lr, head=head, head_lr_mult=head_lr_mult, param_groups=param_groups),
                         optimizer, lr, momentum, weight_decay, nesterov)
    sched = make_schedule(opt, schedule, epochs, step_size, gamma)
    scaler = grad_scaler(dev, precision)
    fingerprint = _fingerprint(model, dict(
        epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
        optimizer=optimizer, seed=seed, nesterov=nesterov, head_lr_mult=head_lr_mult, schedule=schedule,
        step_size=step_size, gamma=gamma, precision=precision, world_size=size,
        data=type(X).__name__ if dataset_path else f"{tuple(X.shape)}"), run_key)
    history: list[float] = []
    start, start_step, partial = 0, 0, (0.0, 0)
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, fingerprint, force=force_resume)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history, start = list(state["history"]), state["epoch"]
        start_step, partial = state.get("step", 0), tuple(state.get("partial", (0.0, 0)))
        _set_rng_state(state["rng"], gen, dev)
    if not dataset_path:
        X, y = X.to(dev), y.to(dev).long()
    else:
        from torch.utils.data import DataLoader

        batches_of = GlobalBatches(len(X), batch_size, rank, size, seed, drop_last)
        # its own generator: the loader's base seed must not draw from the training RNG (a resumed run
        # creates its iterator at another point of that stream)
        loader = DataLoader(SeededItems(X, seed), batch_sampler=batches_of, num_workers=num_workers,
                            pin_memory=dev.type == "cuda", persistent_workers=num_workers > 0,
                            generator=torch.Generator().manual_seed(seed))
    net = model
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    acc_dtype = torch.float32 if dev.type == "mps" else torch.float64

    def save(epoch_done: int, step: int, part, gen_state):
        if checkpoint is not None and rank == 0:
            rng = _rng_state(None, dev)
            if gen_state is not None:
                rng["batches"] = gen_state
            save_checkpoint(checkpoint, {
                "format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "epoch": epoch_done, "step": step,
                "partial": part, "history": history, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None, "scaler": scaler.state_dict(),
                "rng": rng})

    model.train()
    steps_run = 0  # batches this call has trained: the ranks agree on a stop request every few of them
    try:
        for epoch in progress(range(start, epochs), desc=desc, initial=start, total=epochs,
                              **({"disable": True} if rank else {})):
            skip = start_step if epoch == start else 0
            total = torch.zeros((), dtype=acc_dtype, device=dev)
            count = 0
            if epoch == start and skip and rank == 0:  # the ranks' sums at the stop, held by rank 0
                total += partial[0]
                count = int(partial[1])
            gen_state = gen.get_state() if gen is not None else None
            if dataset_path:
                batches_of.set_epoch(epoch, skip)
                sizes = batches_of.global_sizes()[skip:]
                batches = ((b[0], b[1], m) for b, m in zip(loader, sizes))
            else:
                batches = _tensor_batches(X, y, batch_size * size, gen, rank, size, skip)
            step = skip
            for xb, yb, global_n in batches:
                xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True).long()
                if channels_last and xb.dim() == 4:
                    xb = xb.contiguous(memory_format=torch.channels_last)
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
                total += loss.detach().to(acc_dtype) * len(yb)
                count += len(yb)
                step += 1
                steps_run += 1
                if _stop_requested(size, steps_run, dev):
                    part = (float(total), count) if size == 1 else tuple(_all_reduce_sum([float(total), count], dev))
                    save(epoch, step, part, gen_state)
                    raise Stopped(epoch, step, checkpoint)
            sums = [float(total), count]
            if size > 1:
                sums = _all_reduce_sum(sums, dev)
            history.append(sums[0] / sums[1])
            if sched is not None:
                sched.step()
            if math.isfinite(history[-1]):  # a diverged epoch never overwrites the last good checkpoint
                save(epoch + 1, 0, (0.0, 0), gen.get_state() if gen is not None else None)
            if on_epoch is not None:
                on_epoch(epoch, list(history), model)
            if epoch + 1 < epochs and _stop_requested(size, 0, dev):  # the ranks also agree at every epoch's end
                raise Stopped(epoch + 1, 0, checkpoint)
    finally:
        _STOP.clear()
    model.eval()
    return history


STOP_CHECK_EVERY = 8  # batches between the ranks' agreement on a stop request (one tiny all-reduce)


def _stop_requested(size: int, steps_run: int, dev: torch.device) -> bool:
    """Whether to stop after this batch: the request flag, agreed by all ranks every few batches."""
    if size == 1:
        return _STOP.is_set()
    if steps_run % STOP_CHECK_EVERY:
        return False
    import torch.distributed as dist

    flag = torch.tensor([1.0 if _STOP.is_set() else 0.0], device=dev if dev.type == "cuda" else "cpu")
    dist.all_reduce(flag)
    return bool(flag.item())


def _tensor_batches(X, y, batch_size, gen, rank, size, skip: int = 0):
    """(inputs, labels, global batch count) of one shuffled pass; rank r takes its shard of each batch."""
    for b, idx in enumerate(iterate_minibatches(len(X), batch_size, gen)):
        if b < skip:
            continue
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
