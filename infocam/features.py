"""The frozen-backbone feature cache: images -> features once, on the fastest runtime, on disk.

Chapters 3 and 4 read pooled features and final conv maps of the CUB images from a frozen
ImageNet EfficientNet-Lite0; chapter 5 trains the last stage(s) of Lite0 on the cached
activations of its frozen early stages (``cut=``, see :func:`infocam.models.backbones.split_lite0`)
and reads the final maps of the Tiny-ImageNet validation images. :func:`extract_features` computes
each of these once and caches it atomically under :func:`infocam.paths.cache_dir`;
``infocam features`` (``make features``) warms every cache the book needs before the chapters run.

The forward pass runs on the measured-fastest runtime (``benchmarks/bench_features.py``): on CPU
the network is exported once to ONNX (cached beside the features, keyed by the weights' hash, the
input size and the cut) and run with ONNX Runtime, 4-7x the images/s of PyTorch eager on 2 threads
(``channels_last`` ~1.2-1.6x, ``torch.compile`` ~2x); its maps differ from eager PyTorch's by
~4e-5 (values up to 6; ``tests/test_features.py`` asserts 1e-3). PyTorch eager is the fallback and
the choice on a GPU. The runtime is part of the cache key. JPEG decoding and resizing run in a
worker thread that prefetches the next batches while the current one is computed; ToTensor +
Normalize are one table look-up per pixel value on the batch (bit-identical, 0.63-0.92x the
decode CPU time of the per-image transform).

What a pass costs (``bench_features.py --levers``, 2 shared cores): ~14 CPU s per 1,000 224 px
images, ~85% of it in the forward pass, ~1 s decoding, ~0.3 s writing float16 maps, 0.04 s the
pooled mean. ``threads=`` sets ONNX Runtime's threads (default: PyTorch's); next to another busy
process (a book build's other worker) one thread costs 0.83-0.91x the forward pass's CPU seconds
of two and 0.87-0.93x the whole pass's, at 0.85-0.9x its images/s. Threads and batch size (16-128)
leave the values bit-identical; ONNX Runtime's other graph optimisation levels are ~2.5x slower
and differ by 4e-5, so the default (all) stays.

Chapter 5, for example, reads what ``infocam features`` cached (pass *all* of ``cub.paths`` and
index afterwards: the path list is part of the cache key)::

    acts = extract_features(BACKBONE, cub.paths, size=CUB_IMAGE_SIZE, cut=CHAPTER5_CUT, cache_key=CUB_CACHE_KEY)
    frozen, top = split_lite0(copy.deepcopy(load_backbone(BACKBONE).model), CHAPTER5_TRAINABLE_FROM)
    logits = top(torch.from_numpy(acts[batch]).float())   # top.features(...) -> (B, 1280, 7, 7)
    maps = extract_features(BACKBONE, tiny.paths, size=TINY_IMAGE_SIZE, spatial=True,
                            cache_key=TINY_CACHE_KEY, mmap=True)   # 10,000 x 1280 x 7 x 7, 1.25 GB

This is infrastructure: it imports ``infocam.models`` and ``infocam.paths``, never ``infocam.data``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from infocam.device import resolve_device
from infocam.models.backbones import (BACKBONES, DEFAULT_SIZE, LITE0_STAGES, Lite0Blocks, imagenet_transform,
                                      lite0_cut_before, lite0_stage_blocks, load_backbone)
from infocam.paths import DataError, cache_dir
from infocam.utils import exclusive_lock, progress

# -- what the book caches (one place; the chapters and `infocam features` use these) ----------
BACKBONE = "efficientnet_lite0"
CUB_IMAGE_SIZE = 224          # chapters 3-5: whole CUB image resized to 224x224 (no crop)
CUB_CACHE_KEY = "cub"
CHAPTER5_TRAINABLE_FROM = "stage7"  # chapter 5 fine-tunes stage 7, the 1280-channel conv and the head
CHAPTER5_CUT = lite0_cut_before(CHAPTER5_TRAINABLE_FROM)  # "stage6": cached (N, 192, 7, 7) float16
TINY_IMAGE_SIZE = 224         # Tiny-ImageNet 64 px images upsampled for the 224 px network
TINY_CACHE_KEY = "tiny-imagenet-val"

RUNTIMES = ("auto", "onnxruntime", "torch")


def resolve_runtime(runtime: str = "auto", device: str | torch.device = "cpu") -> str:
    """``"auto"`` -> ONNX Runtime on CPU when installed, PyTorch eager otherwise (and on GPUs)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {RUNTIMES}")
    dev = resolve_device(device)
    if runtime == "onnxruntime":
        if dev.type != "cpu":
            raise ValueError(f"runtime 'onnxruntime' runs on the CPU only; on {dev} use runtime='torch' or 'auto'")
        _import_onnxruntime()
        return runtime
    if runtime == "auto":
        if dev.type != "cpu":
            return "torch"
        try:
            _import_onnxruntime()
        except ImportError:
            return "torch"
        return "onnxruntime"
    return runtime


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(f"runtime 'onnxruntime' needs the onnxruntime package ({exc}); "
                          "pip install -r requirements.txt, or use runtime='torch'") from None
    return onnxruntime


def runtime_tag(runtime: str, device: str | torch.device = "cpu") -> str:
    """Names the runtime (and version) that computed a cache file, part of its key."""
    if runtime == "onnxruntime":
        return f"onnxruntime-{_import_onnxruntime().__version__}"
    return f"torch-{torch.__version__}-{resolve_device(device).type}"


# -- the frozen network and its ONNX export ---------------------------------------------------


class _FeatureMaps(nn.Module):
    """A backbone's final conv maps as a module with one output, ``("maps",)``."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.model = backbone.model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.backbone.feature_maps(x),)


class _Lite0Taps(nn.Module):
    """EfficientNet-Lite0 up to its last tap, returning the activations after each tapped stage.

    ``taps`` are stage names (see :data:`LITE0_STAGES`) and/or ``"maps"`` (the final 1280-channel
    maps), so one pass fills the caches of chapters 3/4 (maps) and chapter 5 (a cut) together.
    """

    def __init__(self, model: nn.Module, taps: tuple[str, ...]):
        super().__init__()
        self.taps = taps
        self.stem = nn.Sequential(model._conv_stem, model._bn0, model._swish)
        self.segments = nn.ModuleList()
        first = 0
        for tap in taps:
            stop = len(model._blocks) if tap == "maps" else lite0_stage_blocks(tap).stop
            segment = [Lite0Blocks(model, range(first, stop))]
            if tap == "maps":
                segment.append(nn.Sequential(model._conv_head, model._bn1, model._swish))
            self.segments.append(nn.Sequential(*segment))
            first = stop

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outputs = []
        for segment in self.segments:
            x = segment(x)
            outputs.append(x)
        return tuple(outputs)


def _order_taps(taps) -> tuple[str, ...]:
    order = (*LITE0_STAGES, "maps")
    return tuple(sorted(set(taps), key=order.index))


def frozen_network(backbone_name: str = BACKBONE, size: int | None = None, outputs=("maps",),
                   *, data_root=None) -> nn.Module:
    """The frozen network whose outputs are cached, returning a tuple in network order.

    ``outputs``: ``"maps"`` (final conv maps) and, for Lite0, stage names whose activations feed
    :func:`infocam.models.backbones.split_lite0`'s trainable part.
    """
    backbone = load_backbone(backbone_name, size, data_root=data_root)
    taps = _order_taps(outputs)
    if backbone_name == "efficientnet_lite0":
        return _Lite0Taps(backbone.model, taps).eval()
    return _FeatureMaps(backbone).eval()


def weights_hash(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, bytes): keys the ONNX export."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def onnx_path(net: nn.Module, backbone_name: str, size: int, outputs) -> Path:
    """Cache file of ``net``'s ONNX export: keyed by weights' hash, input size, cut(s), torch version."""
    part = "+".join(_order_taps(outputs))
    return (cache_dir() / "onnx" /
            f"{backbone_name}-{size}px-{part}-{weights_hash(net)[:16]}-torch{torch.__version__}.onnx")


def export_onnx(net: nn.Module, backbone_name: str, size: int, outputs) -> Path:
    """Export ``net`` (input (N, 3, size, size), dynamic N) to ONNX once; atomic; returns the file."""
    path = onnx_path(net, backbone_name, size, outputs)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".export-"))
    try:
        example = torch.zeros(2, 3, size, size)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example,), str(tmp / "model.onnx"), dynamo=True, verbose=False,
                              input_names=["images"], output_names=list(_order_taps(outputs)),
                              dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False)
        os.replace(tmp / "model.onnx", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


class FrozenRunner:
    """Runs a frozen network on batches of normalised images on the chosen runtime.

    ``runner(x)`` with x (N, 3, s, s) float32 (NumPy or torch) returns a list of float32 NumPy
    arrays, one per output in network order (``runner.outputs``).
    """

    def __init__(self, backbone_name: str = BACKBONE, size: int | None = None, outputs=("maps",), *,
                 runtime: str = "auto", device: str | torch.device = "cpu", threads: int | None = None,
                 data_root=None):
        self.size = size or DEFAULT_SIZE[backbone_name]
        self.device = resolve_device(device)
        self.runtime = resolve_runtime(runtime, self.device)
        self.outputs = _order_taps(outputs)
        self.net = frozen_network(backbone_name, self.size, self.outputs, data_root=data_root)
        if self.runtime == "onnxruntime":
            ort = _import_onnxruntime()
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
                # As for OpenMP (Makefile): idle threads sleep, so processes sharing the cores don't starve.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            path = export_onnx(self.net, backbone_name, self.size, self.outputs)
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        else:
            self.net.to(self.device)

    def __call__(self, x) -> list[np.ndarray]:
        if self.runtime == "onnxruntime":
            x = x.numpy() if isinstance(x, torch.Tensor) else x
            return self.session.run(None, {"images": np.ascontiguousarray(x, dtype=np.float32)})
        x = torch.as_tensor(x).to(self.device)
        with torch.inference_mode():
            return [y.float().cpu().numpy() for y in self.net(x)]


# -- decode while computing ------------------------------------------------------------------


def _load_image(path: Path, transform):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return transform(im)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path} ({exc}); replace or remove the file") from None


def _split_normalisation(transform):
    """``Compose([..PIL steps.., ToTensor(), Normalize(mean, std)])`` -> (PIL steps, lookup table); else None.

    The table (channels, 256) float32 holds ``(v / 255 - mean) / std`` for every uint8 value v, computed
    with the float32 operations ToTensor and Normalize apply, so indexing it gives their exact values.
    """
    from torchvision import transforms as T

    steps = getattr(transform, "transforms", None)
    if (not steps or len(steps) < 2 or type(steps[-2]) is not T.ToTensor or type(steps[-1]) is not T.Normalize
            or torch.get_default_dtype() != torch.float32):
        return None
    mean, std = (np.asarray(v, np.float32).reshape(-1, 1) for v in (steps[-1].mean, steps[-1].std))
    table = (np.arange(256, dtype=np.float32)[None, :] / np.float32(255) - mean) / std
    return T.Compose(steps[:-2]), table


def _load_batch(paths: list[Path], transform) -> torch.Tensor:
    """``torch.stack([transform(image) ...])``; for an ImageNet transform, ToTensor + Normalize are one
    table look-up per pixel value (identical values, a quarter of their CPU time per image)."""
    split = _split_normalisation(transform)
    if split is None:
        return torch.stack([_load_image(p, transform) for p in paths])
    pil, table = split
    images = [np.asarray(_load_image(p, pil)) for p in paths]
    shape = images[0].shape
    if any(im.dtype != np.uint8 or im.shape != shape for im in images) or len(shape) != 3 or shape[2] != len(table):
        # not same-size 8-bit images with one channel per mean: ToTensor's and Normalize's other cases
        return torch.stack([_load_image(p, transform) for p in paths])
    batch = np.empty((len(images), shape[2], shape[0], shape[1]), np.float32)
    for out, image in zip(batch, images):
        for c, channel in enumerate(np.ascontiguousarray(image.transpose(2, 0, 1))):
            np.take(table[c], channel, out=out[c])
    return torch.from_numpy(batch)


def prefetched_batches(paths: list[Path], transform, batch_size: int, workers: int = 1, ahead: int = 2):
    """Yield stacked batches of ``transform(image)`` in order, decoded by ``workers`` threads.

    Up to ``ahead`` batches are decoded while the caller computes on the current one (PIL releases
    the GIL while decoding and resizing), so the forward pass is the bound, not
    the JPEGs: one thread decodes a 224 px batch in ~1/10 of the time a one-thread forward pass takes.
    """
    starts = list(range(0, len(paths), batch_size))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        queue: deque = deque(pool.submit(_load_batch, paths[start : start + batch_size], transform)
                             for start in starts[: ahead + 1])
        for i in range(len(starts)):
            batch = queue.popleft().result()
            if i + ahead + 1 < len(starts):
                start = starts[i + ahead + 1]
                queue.append(pool.submit(_load_batch, paths[start : start + batch_size], transform))
            yield batch


# -- the cache --------------------------------------------------------------------------------


def _cache_path(name: str, size: int, kind: str, crop: bool, paths: list[Path], cache_key: str | None,
                tag: str) -> Path:
    h = hashlib.sha256(f"{name}|{size}|{kind}|{crop}|{tag}|v2".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).resolve()}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    prefix = f"{cache_key}-" if cache_key else ""
    return cache_dir() / "features" / f"{prefix}{name}-{size}px-{kind}-{len(paths)}-{h.hexdigest()[:16]}.npy"


def _kind(spatial: bool, cut: str | None) -> str:
    return cut or ("spatial" if spatial else "pooled")


def _check_request(backbone_name: str, paths, size: int | None, kinds) -> tuple[list[Path], int]:
    if backbone_name not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone_name!r}; choose one of {BACKBONES}")
    for kind in kinds:
        if kind not in ("pooled", "spatial") and (backbone_name != "efficientnet_lite0" or kind not in LITE0_STAGES):
            raise ValueError(f"cut={kind!r}: cuts are stages of efficientnet_lite0, one of {LITE0_STAGES}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("extract_features needs at least one image path")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{len(missing)} image files are missing, e.g. {missing[0]}")
    return paths, size or DEFAULT_SIZE[backbone_name]


def feature_cache_path(backbone_name: str, paths, *, size: int | None = None, spatial: bool = False,
                       crop: bool = False, cache_key: str | None = None, cut: str | None = None,
                       runtime: str = "auto", device: str | torch.device = "cpu") -> Path:
    """Where :func:`extract_features` caches these features (to check whether they are cached)."""
    kind = _kind(spatial, cut)
    paths, size = _check_request(backbone_name, paths, size, [kind])
    tag = runtime_tag(resolve_runtime(runtime, device), device)
    return _cache_path(backbone_name, size, kind, crop, paths, cache_key, tag)


class _NpyWriter:
    """A .npy array filled batch by batch on disk (no second copy in memory), renamed into place."""

    def __init__(self, path: Path | None, shape: tuple, dtype):
        self.path = path
        if path is None:
            self.array = np.empty(shape, dtype)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype, shape=shape)

    def commit(self) -> None:
        if self.path is not None:
            self.array.flush()
            del self.array
            os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.path is not None:
            self.tmp.unlink(missing_ok=True)


def _compute(backbone_name: str, paths: list[Path], size: int, crop: bool, files: dict, *, runtime: str,
             device, batch_size: int, workers: int, threads: int | None, data_root) -> dict:
    """One pass over ``paths`` filling every kind in ``files`` (kind -> cache file, or None: in memory)."""
    taps = {"maps" if kind in ("pooled", "spatial") else kind for kind in files}
    runner = FrozenRunner(backbone_name, size, taps, runtime=runtime, device=device, threads=threads,
                          data_root=data_root)
    with torch.no_grad():
        shapes = dict(zip(runner.outputs, (tuple(y.shape[1:]) for y in
                                           runner.net(torch.zeros(1, 3, size, size, device=runner.device)))))
    n = len(paths)
    writers = {}
    try:
        for kind, path in files.items():
            tap = "maps" if kind in ("pooled", "spatial") else kind
            shape = (n, shapes[tap][0]) if kind == "pooled" else (n, *shapes[tap])
            writers[kind] = _NpyWriter(path, shape, np.float32 if kind == "pooled" else np.float16)
        transform = imagenet_transform(size, backbone=backbone_name, crop=crop)
        batches = prefetched_batches(paths, transform, batch_size, workers)
        for i, x in enumerate(progress(batches, desc=f"{backbone_name} {'+'.join(files)} features",
                                       total=(n + batch_size - 1) // batch_size)):
            outputs = dict(zip(runner.outputs, runner(x)))
            rows = slice(i * batch_size, i * batch_size + len(x))
            for kind, writer in writers.items():
                if kind == "pooled":
                    writer.array[rows] = outputs["maps"].mean(axis=(2, 3))
                else:
                    writer.array[rows] = outputs["maps" if kind == "spatial" else kind]
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    for writer in writers.values():
        writer.commit()
    return {kind: writer.array for kind, writer in writers.items() if writer.path is None}


def cache_features(backbone_name: str, paths, *, kinds=("spatial",), size: int | None = None, crop: bool = False,
                   batch_size: int = 32, cache_key: str | None = None, data_root=None, runtime: str = "auto",
                   device: str | torch.device = "cpu", workers: int = 1, threads: int | None = None
                   ) -> dict[str, Path]:
    """Fill, in ONE pass over the images, every cache in ``kinds`` that is missing; return kind -> file.

    ``kinds``: "pooled", "spatial" (final maps; also caches "pooled") and/or Lite0 stage names
    (activations at a cut). ``infocam features`` uses it to warm chapters 3-5's caches together;
    :func:`extract_features` reads the same files. A second process asking for the same images
    meanwhile waits for the first (a lock file beside the cache), then reads what it wrote.
    """
    kinds = list(dict.fromkeys(kinds))
    paths, size = _check_request(backbone_name, paths, size, kinds)
    runtime = resolve_runtime(runtime, device)
    tag = runtime_tag(runtime, device)
    if "spatial" in kinds and "pooled" not in kinds:
        kinds.append("pooled")
    files = {kind: _cache_path(backbone_name, size, kind, crop, paths, cache_key, tag) for kind in kinds}
    if all(path.exists() for path in files.values()):
        return files
    # One process extracts an image set at a time; another one asking for it waits, then reads it.
    lock = _cache_path(backbone_name, size, "extracting", crop, paths, cache_key, tag).with_suffix(".lock")
    with exclusive_lock(lock, waiting=f"waiting for another process extracting these {len(paths)} images' features"):
        missing = {kind: path for kind, path in files.items() if not path.exists()}
        if missing:
            _compute(backbone_name, paths, size, crop, missing, runtime=runtime, device=device,
                     batch_size=batch_size, workers=workers, threads=threads, data_root=data_root)
    return files


def extract_features(backbone_name: str, paths, *, size: int | None = None, spatial: bool = False,
                     crop: bool = False, batch_size: int = 32, cache_key: str | None = None,
                     use_cache: bool = True, data_root=None, cut: str | None = None,
                     runtime: str = "auto", device: str | torch.device = "cpu", workers: int = 1,
                     threads: int | None = None, mmap: bool = False) -> np.ndarray:
    """Features of the images at ``paths`` from a frozen ImageNet backbone, cached on disk.

    Returns pooled features (N, C) float32 (global average of the final conv maps, the input to
    the ImageNet head; ``head(pooled)`` are the logits), with ``spatial=True`` the final maps
    (N, C, h, w) float16, or with ``cut="stageK"`` (Lite0 only) the float16 activations after
    stage K, the input of ``split_lite0(model, trainable_from="stage{K+1}")``'s trainable part.
    Images are resized to size×size (``crop=True``: ImageNet centre crop) and converted to RGB.

    The cache file name hashes backbone, size, what is cached, the runtime and every path with
    its size and mtime, so a changed image set or runtime is recomputed; writes are atomic.
    Extracting maps also caches the pooled features, and pooled features are read from cached
    maps when only those exist, so chapters 3 and 4 share one pass. ``runtime="auto"`` uses ONNX
    Runtime on CPU and PyTorch eager on ``device="cuda"``. ``mmap=True`` returns a read-only
    memory map of the cache file (for the 10,000 Tiny-ImageNet maps, 1.25 GB).
    """
    kind = _kind(spatial, cut)
    paths, size = _check_request(backbone_name, paths, size, [kind])
    runtime = resolve_runtime(runtime, device)
    options = dict(runtime=runtime, device=device, batch_size=batch_size, workers=workers, threads=threads,
                   data_root=data_root)
    if not use_cache:
        return _compute(backbone_name, paths, size, crop, {kind: None}, **options)[kind]
    tag = runtime_tag(runtime, device)
    cache = _cache_path(backbone_name, size, kind, crop, paths, cache_key, tag)
    maps_cache = _cache_path(backbone_name, size, "spatial", crop, paths, cache_key, tag)
    if kind == "pooled" and not cache.exists() and maps_cache.exists():
        # Cached maps (e.g. from chapter 4 or `infocam features`) hold the pooled features too.
        maps = np.load(maps_cache, mmap_mode="r")
        return np.concatenate([maps[i : i + 256].astype(np.float32).mean(axis=(2, 3))
                               for i in range(0, len(maps), 256)])
    cache_features(backbone_name, paths, kinds=[kind], size=size, crop=crop, cache_key=cache_key, **options)
    return np.load(cache, mmap_mode="r" if mmap else None)
