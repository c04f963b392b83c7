"""Where and how a job computes: CPU threads, device, precision, compile, peak FLOP/s.

A rung names these as it was planned (`device: auto`, `precision: auto`, ...); training,
evaluation and the throughput benchmark resolve them here, the same way, for the machine
the job actually runs on. Device, threads and compile are RUNTIME_FIELDS of a checkpoint
(a run may resume under other values of them); precision is not.
"""

from __future__ import annotations

import os
from typing import Any

import torch

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' datasheets, matched in order
# against torch.cuda.get_device_name(); LADDER_PEAK_FLOPS overrides (e.g. 989e12).
PEAK_BF16_FLOPS = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("H20", 148e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
]


def granted_threads(env: dict[str, str] | None = None) -> int | None:
    """The CPU threads this job was granted: Snakemake runs every shell job with
    OMP_NUM_THREADS={threads} (its `threads:`, capped at --cores); None if unset."""
    value = (os.environ if env is None else env).get("OMP_NUM_THREADS", "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else None


def job_threads(wanted: int, granted: int | None = None, processes: int = 1) -> int:
    """CPU threads for each of a job's `processes` (DDP ranks): the rung's `threads`, but
    never more than the job was granted (`--threads`, else `granted_threads()`), shared
    among the processes; at least one."""
    granted = granted or granted_threads()
    if granted is None:
        return wanted
    return max(1, min(wanted, granted // max(1, processes)))


def set_threads(threads: int) -> None:
    """Run torch's CPU ops (intra- and inter-op pools) on `threads` threads: a job owns
    that many cores, so jobs sharing a machine do not oversubscribe it."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # set once per process, before any inter-op work
        pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available")
    return dev


def use_cuda(device: torch.device) -> None:
    """Make `device` this process's current GPU, with TF32 for any fp32 matmul."""
    torch.cuda.set_device(device)
    torch.set_float32_matmul_precision("high")


def resolve_precision(name: str, device: torch.device) -> str:
    """auto → bf16 on CUDA (fp16 on pre-Ampere GPUs), fp32 on CPU."""
    if name == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return name


def autocast_for(precision: str, device: torch.device):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def resolve_compile(value: Any, device: torch.device) -> bool:
    """compile auto → on for CUDA (the big win there), off on CPU (compile time dominates)."""
    v = str(value).lower()
    if v == "auto":
        return device.type == "cuda"
    if v not in ("true", "false"):
        raise ValueError(f"compile: {value!r} is not one of auto, true, false")
    return v == "true"


def peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak (FLOP/s) for MFU; None on CPU or an unknown GPU."""
    if os.environ.get("LADDER_PEAK_FLOPS"):
        return float(os.environ["LADDER_PEAK_FLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((f for key, f in PEAK_BF16_FLOPS if key in name), None)
