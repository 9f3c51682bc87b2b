"""How a run uses its hardware: the device a `device` knob names, the autocast precision a
`precision` knob resolves to, whether torch.compile can run, and the CPU thread count.

One rule for every stage (train, evaluate, generate), so "auto" means the same everywhere:
bf16 autocast where the hardware multiplies bf16 natively (CUDA; CPUs with AMX or
AVX512-BF16, where a bf16 matmul runs ~10x an fp32 one), fp32 elsewhere. Weights, optimizer
state and checkpoints stay fp32 whatever the precision: autocast only changes the dtype the
matmuls run in.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The device a `device` knob names.

    Args:
        name: "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".
        local_rank: the GPU a bare "cuda" means (this process's rank on its node under
            torchrun; 0 otherwise).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls run natively: a CUDA device that supports bf16, or a CPU with
    AMX tiles or AVX512-BF16 (asked of the CPU, never assumed from the platform)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's probes
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a `precision` knob on `device` (None: plain fp32).

    Raises:
        ValueError: precision not in PRECISIONS.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and not native_bf16(device)):
        return None
    return torch.bfloat16


def decode_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of cached decoding: as `autocast_dtype`, except that "auto" keeps
    fp32 on CPU, where a decode step is many tiny ops and bf16 casts make it slower
    (measured with AMX, small, 1 thread: 117 vs 266 tokens/s at batch 1, 347 vs 669 at 4)."""
    if precision == "auto" and device.type == "cpu":
        return None
    return autocast_dtype(precision, device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast(device, dtype), or a no-op context when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compiler_missing(device: torch.device) -> str | None:
    """Why torch.compile cannot run on `device` (None: it can). On CPU, inductor builds C++
    kernels, so it needs a C++ compiler on PATH."""
    if device.type == "cuda":
        return None
    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if any(name and shutil.which(name) for name in names):
        return None
    return "no C++ compiler on PATH (torch.compile on CPU needs g++ or clang++)"


def cpu_threads() -> int:
    """The cores this process may run on (its affinity mask, which containers and taskset
    restrict; os.cpu_count() counts the whole machine)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads: `threads` when > 0, else OMP_NUM_THREADS when the user
    set it (torch already honours it), else every core of the affinity mask. Returns the
    count in effect."""
    if threads > 0:
        torch.set_num_threads(threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(cpu_threads())
    return torch.get_num_threads()
