"""EMA teacher update, θ_T ← θ_T + rate·(θ − θ_T), in place, with a finiteness guard (pure torch).

Two passes, no full-size temporary, one host sync each:
  * teacher and actor on one device (the CPU backend; an offloaded actor): a read-only pass computes
    d = θ − θ_T chunk by chunk into a cache-sized buffer and keeps max|d|: that gives max|Δ| = rate·max|d|
    and, since d is non-finite exactly when a value of θ or θ_T is, the finiteness check in the same read; then one
    fused ``torch._foreach_lerp_`` (12 bytes moved per value, the floor);
  * teacher elsewhere (verl's forward-only engine keeps it in pinned host memory) and actor on an accelerator:
    ``aminmax`` of the actor shards on the accelerator (finiteness), then per chunk the teacher values are staged
    to the accelerator (fp32), d = θ − θ_T (a bf16 actor is upcast inside the subtraction), θ_T += rate·d there,
    and the chunk is copied back: 8 bytes per value cross the bus, none of the arithmetic runs on the host.
If any actor value is non-finite nothing is written; ``agree`` makes every rank take the same decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

#: values per chunk: cache-sized on the CPU (the scratch stays in L2), large on an accelerator (few launches).
CPU_CHUNK_NUMEL = 1 << 18
ACCELERATOR_CHUNK_NUMEL = 1 << 24


@dataclass(frozen=True)
class EMAResult:
    """What one rank's update did.

    applied: the teacher was updated (every actor value finite on every rank that ``agree`` consulted);
    actor_finite: this rank's actor values are all finite;
    max_abs_delta: max |Δθ_T| on this rank (0.0 when not applied).
    """

    applied: bool
    actor_finite: bool
    max_abs_delta: float

    def as_dict(self) -> dict:
        return {"applied": self.applied, "actor_finite": self.actor_finite, "max_abs_delta": self.max_abs_delta}


def _host_all(flags: list[torch.Tensor]) -> bool:
    """``all`` of 0-d bool tensors, with one host sync per device."""
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for flag in flags:
        by_device.setdefault(flag.device, []).append(flag)
    return all(bool(torch.stack(group).all().cpu()) for group in by_device.values())


def all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """True when every value of every tensor is finite (one ``aminmax`` read each, no temporary)."""
    flags = []
    for tensor in tensors:
        if tensor.numel():
            low, high = torch.aminmax(tensor)
            flags.append(torch.isfinite(low) & torch.isfinite(high))  # NaN makes both NaN, ±inf shows in one
    return _host_all(flags)


def _flat(tensor: torch.Tensor, name: str) -> torch.Tensor:
    if not tensor.is_contiguous():
        raise ValueError(f"EMA: {name} is not contiguous (shape {tuple(tensor.shape)}); an in-place update of a "
                         "reshaped copy would be lost")
    return tensor.view(-1)


def _chunk_size(device: torch.device, chunk_numel: int | None) -> int:
    return chunk_numel or (CPU_CHUNK_NUMEL if device.type == "cpu" else ACCELERATOR_CHUNK_NUMEL)


def _buffer(buffers: dict, key: tuple, size: int, device: torch.device) -> torch.Tensor:
    """One reusable fp32 buffer per (device, role), grown to the largest chunk seen (one chunk at most)."""
    buf = buffers.get(key)
    if buf is None or buf.numel() < size:
        buf = buffers[key] = torch.empty(size, dtype=torch.float32, device=device)
    return buf[:size]


def _running_max(largest: dict, device: torch.device, diff: torch.Tensor) -> None:
    low, high = torch.aminmax(diff)  # NaN in d makes both NaN; ±inf shows in one
    step = torch.maximum(high, low.neg())
    largest[device] = step if device not in largest else torch.maximum(largest[device], step)


def _host_max(largest: dict) -> float:
    """max over devices of the running maxima (NaN if any is NaN); .cpu() waits for each device's queue."""
    values = [float(m.cpu()) for m in largest.values()]
    return math.nan if any(math.isnan(v) for v in values) else max(values, default=0.0)


def _max_abs_diff_same_device(pairs, chunk_numel: int | None) -> float:
    """max |θ − θ_T| over pairs that share a device, chunk by chunk through a cache-sized buffer (reads only)."""
    buffers: dict = {}
    largest: dict = {}
    for _, flat_t, flat_a in pairs:
        chunk = _chunk_size(flat_a.device, chunk_numel)
        for start in range(0, flat_t.numel(), chunk):
            t_chunk, a_chunk = flat_t[start:start + chunk], flat_a[start:start + chunk]
            diff = torch.sub(a_chunk, t_chunk, out=_buffer(buffers, (flat_a.device, "d"), t_chunk.numel(),
                                                           flat_a.device))
            step = diff.abs_().amax()  # NaN propagates, as ±inf does
            device = flat_a.device
            largest[device] = step if device not in largest else torch.maximum(largest[device], step)
    return _host_max(largest)


def _update_chunked(pairs, rate: float, chunk_numel: int | None) -> float:
    """θ_T += rate·(θ − θ_T) chunk by chunk on the actor's device; a teacher chunk that lives elsewhere is staged
    there (fp32) and copied back. Returns max |θ − θ_T| (before the update)."""
    buffers: dict = {}
    largest: dict = {}
    for _, flat_t, flat_a in pairs:
        device = flat_a.device
        staged = flat_t.device != device
        chunk = _chunk_size(device, chunk_numel)
        for start in range(0, flat_t.numel(), chunk):
            t_chunk, a_chunk = flat_t[start:start + chunk], flat_a[start:start + chunk]
            n = t_chunk.numel()
            work = _buffer(buffers, (device, "stage"), n, device).copy_(t_chunk, non_blocking=True) if staged \
                else t_chunk
            diff = torch.sub(a_chunk, work, out=_buffer(buffers, (device, "d"), n, device))
            _running_max(largest, device, diff)
            work.add_(diff, alpha=rate)
            if staged:
                t_chunk.copy_(work, non_blocking=True)  # ordered before the next chunk's staging (one stream)
    return _host_max(largest)


def ema_update_(
    teacher: Sequence[torch.Tensor],
    actor: Sequence[torch.Tensor],
    rate: float,
    *,
    names: Sequence[str] | None = None,
    chunk_numel: int | None = None,
    agree: Callable[[bool], bool] | None = None,
) -> EMAResult:
    """θ_T ← θ_T + rate·(θ − θ_T) on each pair (teacher[i], actor[i]), in place on ``teacher``.

    teacher: fp32 tensors, contiguous; actor: the same shapes, any float dtype (module docstring: the two paths).
    ``agree(local_ok) -> bool`` combines the decision of all ranks (default: this rank alone); nothing is written
    unless it returns True.
    """
    if len(teacher) != len(actor):
        raise ValueError(f"EMA: {len(teacher)} teacher tensors for {len(actor)} actor tensors")
    names = list(names) if names is not None else [f"tensor {i}" for i in range(len(teacher))]
    pairs = []
    for name, t, a in zip(names, teacher, actor):
        if t.shape != a.shape:
            raise ValueError(f"EMA: {name}: teacher shard {tuple(t.shape)} != actor shard {tuple(a.shape)}")
        if t.dtype != torch.float32:
            raise ValueError(f"EMA: {name}: teacher dtype {t.dtype}; the EMA accumulates in fp32")
        if t.numel():  # an uneven FSDP shard can be empty on some ranks
            pairs.append((name, _flat(t, f"teacher {name}"), _flat(a, f"actor {name}")))
    # same device and dtype: measure, then one fused lerp; everything else: the chunked update
    local = [p for p in pairs if p[1].device == p[2].device and p[1].dtype == p[2].dtype]
    chunked = [p for p in pairs if not (p[1].device == p[2].device and p[1].dtype == p[2].dtype)]

    local_diff = _max_abs_diff_same_device(local, chunk_numel)
    # a non-finite d means a non-finite θ or θ_T: only then is the actor read again to tell which
    local_finite = math.isfinite(local_diff) or all_finite([a for _, _, a in local])
    actor_finite = local_finite and all_finite([a for _, _, a in chunked])
    ok = actor_finite  # the guard is on the actor; a non-finite teacher value shows in max_abs_delta
    applied = agree(ok) if agree is not None else ok
    if not applied:
        return EMAResult(applied=False, actor_finite=actor_finite, max_abs_delta=0.0)
    if local:
        torch._foreach_lerp_([t for _, t, _ in local], [a for _, _, a in local], rate)
    diffs = [local_diff, _update_chunked(chunked, rate, chunk_numel) if chunked else 0.0]
    worst = math.nan if any(math.isnan(d) for d in diffs) else max(diffs)
    largest = torch.tensor(worst, dtype=torch.float32)  # |Δ| = rate·|d|, rounded as an fp32 product
    return EMAResult(applied=True, actor_finite=actor_finite, max_abs_delta=float(largest * rate))
