"""The teacher of a LoRA run (``actor_rollout_ref.model.lora_rank > 0``): the actor's base weights, shared.

No teacher engine is built; every kind runs its teacher pass on the actor engine:
  * ``live``: the current adapters;
  * ``base``: the adapters disabled (verl's ``no_lora_adapter`` flag → ``FSDPEngine.disable_adapter()``, the context
    verl itself uses for the reference of a LoRA run);
  * ``ema``: :class:`AdapterEMA`, an fp32 host copy of this rank's adapter shards that follows the actor by EMA and is
    copied into the actor's adapter shards around the teacher pass (``swapped_in``), the actor's values restored
    after, bit for bit.

The adapters are the actor's trainable parameters (peft freezes the base; ``modules_to_save`` would be trainable and
is followed too). Checkpoints: ``teacher/model_world_size_W_rank_R.pt`` holds this rank's {name: fp32 shard}, the
file name the resume verification (srpo_verl/preflight/checkpoint.py) already checks, CRC and finiteness.
Pure torch; the worker (worker.py) passes the module and the cross-rank agreement.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Callable, Iterator

import torch

from srpo_verl.core.ema import EMAResult, all_finite, ema_update_


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def adapter_shards(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{name: this rank's shard} of the module's trainable parameters (the adapters); the tensors alias the
    parameters' storage, so writing into them writes the parameters."""
    shards = {name: _local(param.data) for name, param in module.named_parameters() if param.requires_grad}
    if not shards:
        raise ValueError("LoRA teacher: the actor has no trainable parameters (no adapters): check "
                         "actor_rollout_ref.model.lora_rank and target_modules")
    return shards


class AdapterEMA:
    """fp32 copy of this rank's adapter shards (host memory, pinned when an accelerator is present).

    ``tensors``: {name: fp32 tensor of the actor shard's shape}, initialised to the actor's adapters at build time
    (the initial adapter: peft's init, or ``lora_adapter_path``)."""

    def __init__(self, module: torch.nn.Module):
        pin = torch.cuda.is_available()
        self.tensors: dict[str, torch.Tensor] = {}
        for name, shard in adapter_shards(module).items():
            copy = torch.empty(shard.shape, dtype=torch.float32, device="cpu", pin_memory=pin)
            self.tensors[name] = copy.copy_(shard)
        self._saved: list[str] = []

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def _pairs(self, module: torch.nn.Module) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        shards = adapter_shards(module)
        if set(shards) != set(self.tensors):
            missing, extra = sorted(set(shards) - set(self.tensors)), sorted(set(self.tensors) - set(shards))
            raise ValueError(f"LoRA EMA teacher: adapter names differ from the actor's (missing {missing[:3]}, "
                             f"extra {extra[:3]})")
        return [(name, self.tensors[name], shards[name]) for name in sorted(shards)]

    def update(self, module: torch.nn.Module, rate: float,
               agree: Callable[[bool], bool] | None = None) -> EMAResult:
        """θ_T ← θ_T + rate·(θ − θ_T) over the adapter shards (srpo_verl.core.ema; nothing written unless every
        actor value is finite on every rank ``agree`` consults)."""
        pairs = self._pairs(module)
        with torch.no_grad():
            return ema_update_([t for _, t, _ in pairs], [a for _, _, a in pairs], rate,
                               names=[n for n, _, _ in pairs], agree=agree)

    @contextlib.contextmanager
    def swapped_in(self, module: torch.nn.Module) -> Iterator[None]:
        """The EMA adapters in the actor's adapter shards for the duration; the actor's own values restored after
        (a copy held aside, so the restore is exact whatever the actor's dtype). The shards are looked up again for
        the restore: verl's param offload moves the parameters to new storage inside the pass."""
        with torch.no_grad():
            pairs = self._pairs(module)
            held = {name: actor.detach().to("cpu", copy=True) for name, _, actor in pairs}
            for _, ema, actor in pairs:
                actor.copy_(ema)
            try:
                yield
            finally:
                _synchronize_accelerator()  # verl offloads with non_blocking copies
                for name, _, actor in self._pairs(module):
                    actor.copy_(held[name])
                _synchronize_accelerator()

    # ------------------------------------------------------------------ checkpoints
    def save(self, folder: str, rank: int, world_size: int, max_to_keep: int | None = None) -> str:
        """Write ``folder/model_world_size_W_rank_R.pt`` ({name: fp32 shard}); keep the newest ``max_to_keep``
        folders this object wrote (rank 0 removes the older ones, as verl rotates actor/)."""
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"model_world_size_{world_size}_rank_{rank}.pt")
        scratch = path + ".tmp"
        torch.save({name: t.clone() for name, t in self.tensors.items()}, scratch)
        os.replace(scratch, path)
        if folder not in self._saved:
            self._saved.append(folder)
        if max_to_keep is not None and max_to_keep > 0:
            while len(self._saved) > max_to_keep:
                old = self._saved.pop(0)
                if rank == 0:
                    shutil.rmtree(old, ignore_errors=True)
        return path

    def load(self, folder: str, rank: int, world_size: int, module: torch.nn.Module) -> str:
        """Read this rank's shard file and verify it against the actor's adapters (names, shapes, fp32, finite)
        before anything is written; raises ValueError naming the file."""
        path = os.path.join(folder, f"model_world_size_{world_size}_rank_{rank}.pt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"LoRA EMA teacher: {path} is missing (the checkpoint was written with another "
                                    "world size, or not by a LoRA run with srpo.teacher=ema)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        shards = adapter_shards(module)
        if not isinstance(state, dict) or set(state) != set(shards):
            names = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"LoRA EMA teacher: {path} holds {names[:3]}..., not the actor's adapters "
                             f"({sorted(shards)[:3]}...): another model, lora_rank or target_modules")
        for name, shard in shards.items():
            saved = state[name]
            if saved.dtype != torch.float32 or saved.shape != shard.shape:
                raise ValueError(f"LoRA EMA teacher: {path}: {name} is {saved.dtype} {tuple(saved.shape)}, the "
                                 f"actor's adapter shard is {tuple(shard.shape)} (fp32 expected): another lora_rank "
                                 "or sharding")
        if not all_finite(list(state.values())):
            raise ValueError(f"LoRA EMA teacher: {path} holds non-finite values")
        for name, tensor in self.tensors.items():
            tensor.copy_(state[name])
        return path


def _synchronize_accelerator() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
