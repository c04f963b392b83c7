"""What a rung will cost before it runs: its training memory against the devices here, and
its GPU-hours at a stated throughput. Estimates for `ladder plan` and `ladder status`."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ladder.devices import nvidia_smi
from ladder.errors import ConfigError
from ladder.model import STATE_BYTES_PER_PARAM, param_groups, train_memory_bytes
from ladder.rung import Rung, format_count

# No device holds more than this (Ladder replicates the model on every device); a rung
# whose estimate is beyond it cannot train anywhere, and is a config error.
MAX_DEVICE_BYTES = 2 * 2**40


def format_bytes(n: float) -> str:
    for div, unit in ((2**50, "PiB"), (2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB")):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:.0f} B"


def memory_estimate(r: Rung, device_type: str) -> int:
    """train_memory_bytes of rung `r` on a device of `device_type` (cuda: bf16/fp16
    activations under `precision: auto`; cpu: fp32)."""
    half = r.precision in ("bf16", "fp16") or (r.precision == "auto" and device_type == "cuda")
    return train_memory_bytes(r.shape, r.micro_batch, 2 if half else 4)


def check_memory(r: Rung, key: str) -> None:
    """An error if rung `r` cannot fit on any device (MAX_DEVICE_BYTES)."""
    need = memory_estimate(r, "cuda")
    if need > MAX_DEVICE_BYTES:
        n = param_groups(r.shape)["params_total"]
        raise ConfigError(
            f"{key}: rung {r.id} ({format_count(n)} parameters) needs about "
            f"{format_bytes(need)} to train ({STATE_BYTES_PER_PARAM} bytes per parameter of "
            f"weights, gradients and AdamW state, plus activations), more than any one "
            f"device holds ({format_bytes(MAX_DEVICE_BYTES)}; Ladder keeps a whole copy on "
            "every GPU); choose smaller sizes"
        )


@functools.cache
def device_memory(device: str) -> tuple[str, int] | None:
    """(what, bytes) of the memory a job on `device` would have on this machine, or None
    where that is unknown: the smallest visible GPU (nvidia-smi) for cuda, physical
    memory for cpu; `auto` is cuda where nvidia-smi finds a GPU, else cpu."""
    if device in ("auto",) or device.startswith("cuda"):
        out = nvidia_smi("memory.total", "--format=csv,noheader,nounits")
        if out:
            try:
                return "cuda", min(int(float(m)) for m in out) * 2**20
            except ValueError:
                pass
        if device != "auto":
            return None
    if device in ("auto", "cpu"):
        try:
            return "cpu", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def memory_warnings(rungs: list[Rung]) -> list[str]:
    """One line per device whose memory on this machine (where `ladder plan` runs; a
    cluster's compute nodes may differ) is below some rungs' estimates, naming the largest."""
    over: dict[str, list[tuple[int, str]]] = {}
    have: dict[str, int] = {}
    for r in rungs:
        found = device_memory(r.device)
        if found is None:
            continue
        kind, have_bytes = found
        need = memory_estimate(r, kind)
        if need > have_bytes:
            where = f"device {r.device}"
            where += f" ({kind} on this machine)" if r.device == "auto" else ""
            over.setdefault(where, []).append((need, r.id))
            have[where] = have_bytes
    out = []
    for where, items in over.items():
        items.sort(reverse=True)
        named = ", ".join(f"{rid} ~{format_bytes(need)}" for need, rid in items[:3])
        more = f" and {len(items) - 3} more" if len(items) > 3 else ""
        out.append(
            f"{len(items)} rung(s) may not fit in the memory of {where}, "
            f"{format_bytes(have[where])}: {named}{more} (estimates; lower train.micro_batch "
            "or run them on a larger device)"
        )
    return out


DEFAULT_FLOPS_PER_S = 4e14


@dataclass(frozen=True)
class Throughput:
    """Sustained training FLOP/s of one GPU for the GPU-hours estimate, and its source:
    "--flops-per-s", "cluster.flops_per_s" or "assumed" (DEFAULT_FLOPS_PER_S)."""

    flops_per_s: float = DEFAULT_FLOPS_PER_S
    basis: str = "assumed"

    @classmethod
    def choose(cls, given: float | None, study: float | None) -> Throughput:
        if given:
            return cls(given, "--flops-per-s")
        if study:
            return cls(study, "cluster.flops_per_s")
        return cls()

    def describe(self) -> str:
        if self.basis == "assumed":
            return (
                f"GPU-hours assuming {self.flops_per_s:.3g} FLOP/s per GPU (~40% MFU on an "
                "H100/H200); state yours as cluster.flops_per_s or --flops-per-s"
            )
        return f"GPU-hours at {self.flops_per_s:.3g} FLOP/s per GPU ({self.basis})"


ASSUMED = Throughput()  # the default: DEFAULT_FLOPS_PER_S, said to be an assumption


def gpu_hours(rung: Rung, flops_per_s: float) -> float:
    """Estimated device-hours: the rung's FLOPs at a stated sustained throughput per GPU."""
    # a rung on g GPUs runs ~g times faster but holds g GPUs: GPU-hours stay FLOPs / rate
    return rung.row()["flops"] / flops_per_s / 3600


def on_gpu(train: dict) -> bool:
    """Whether the rung trained on a GPU. train.json's `device` is "cpu" or the GPU's
    product name ("NVIDIA H200"), not "cuda"; `device_type` says it outright (newer files)."""
    kind = train.get("device_type")
    if kind is not None:
        return kind == "cuda"
    return not str(train.get("device") or "cpu").startswith("cpu")
