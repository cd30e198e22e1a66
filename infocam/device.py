"""Where the work runs: one ``device`` parameter, resolved once, and mixed precision.

Every chapter takes ``device = "auto"`` (CUDA if available, then Apple MPS, then CPU) or an
explicit ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; :func:`resolve_device` turns it into a
``torch.device`` or one clear error. ``precision`` is ``"fp32"`` (default; the only choice that
keeps CPU numbers bit-identical), ``"bf16"`` or ``"fp16"`` (autocast; fp16 needs a grad scaler,
see :func:`grad_scaler`). Chapters record ``str(device)`` with :func:`infocam.runs.record`, so
``results.json`` names the device the work actually ran on.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


class DeviceError(ValueError):
    """A device or precision this machine cannot provide; the message says what it has."""


def available_devices() -> list[str]:
    """Devices this process can use, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA, then MPS, then CPU; an explicit name is checked against this machine."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not device:
        raise DeviceError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    have = available_devices()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps" if "mps" in have else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise DeviceError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for CUDA, but this machine has none "
                              f"(available: {', '.join(have)}); use device='auto' or 'cpu'")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} "
                              f"CUDA device(s) (available: {', '.join(have)})")
        return torch.device("cuda", index)
    if dev.type == "mps" and "mps" not in have:
        raise DeviceError(f"device 'mps' is not available here (available: {', '.join(have)})")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return dev


def describe(device: torch.device) -> str:
    """Human-readable name of a resolved device, for ``results.json`` (e.g. ``cuda:0 NVIDIA H200``)."""
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        import os

        return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    return str(device)


def check_precision(precision: str, device: torch.device) -> str:
    """Validate ``precision`` for ``device``: fp16 autocast is refused on CPU (bf16 is allowed)."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise DeviceError("precision 'fp16' needs a GPU; on CPU use 'fp32' (default) or 'bf16'")
    return precision


def autocast(device: torch.device, precision: str = "fp32"):
    """Autocast context for ``precision`` on ``device`` (a no-op context for fp32)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str = "fp32") -> torch.amp.GradScaler:
    """A grad scaler, enabled only for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16" and device.type == "cuda"))
