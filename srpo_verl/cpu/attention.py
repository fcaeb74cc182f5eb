"""A pure-PyTorch stand-in for flash-attn's varlen kernel, so that verl's Ulysses SP runs on CPU.

verl 0.9.1 splits attention over the sequence-parallel group only by replacing
``transformers.integrations.flash_attention._flash_attention_forward`` with ``_ulysses_flash_attention_forward``
(``verl/models/transformers/monkey_patch.py``): an all-to-all turns [b, S/sp, h, d] into [b, S, h/sp, d], the inner
attention runs on the whole packed sequence, and a second all-to-all scatters it back. ``eager`` and ``sdpa`` never
reach that attribute (they would attend within each rank's slice), and transformers' own flash path refuses a CPU
tensor and would fetch a hub kernel. So the CPU backend registers :data:`CPU_VARLEN_ATTENTION`:

  * as an attention implementation: transformers' own ``flash_attention_forward`` (which looks the module attribute
    up at each call, so verl's replacement is reached), with flash's mask function (no mask for packed sequences);
  * as the inner kernel: :func:`varlen_attention_forward` replaces the ``_flash_attention_forward`` that both
    ``transformers.integrations.flash_attention`` (until verl wraps it) and verl's monkey_patch module call, so no
    flash-attn import or hub download is ever attempted.

Every Ulysses all-to-all of the process is counted (:func:`all_to_all_calls`), and the first one prints one line
(``ALL_TO_ALL_LINE``) that the e2e test reads from the run's console.
"""

from __future__ import annotations

from types import ModuleType

import torch

#: ``actor_rollout_ref.model.override_config.attn_implementation`` of the CPU backend's splittable attention. No
#: "flash" in the name: transformers treats any such name as a flash request and loads a hub kernel for it at
#: model init (``is_flash_attention_requested`` → ``lazy_import_flash_attention``).
CPU_VARLEN_ATTENTION = "srpo_cpu_varlen"
ALL_TO_ALL_LINE = "[srpo] cpu: Ulysses all-to-all ran"

_all_to_all_calls = 0


def all_to_all_calls() -> int:
    """All-to-alls of verl's Ulysses attention run in this process so far."""
    return _all_to_all_calls


def _segments(query_length: int, position_ids: torch.Tensor | None, cu_seq_lens: torch.Tensor | None) -> list[int]:
    """Lengths of the packed sequences: from ``cu_seq_lens`` when given, else a new sequence wherever the position
    id is 0 (what flash-attn's varlen path derives from position ids)."""
    if cu_seq_lens is not None:
        return cu_seq_lens.diff().tolist()
    if position_ids is None:
        return [query_length]
    flat = position_ids.reshape(-1, position_ids.shape[-1])[0]
    starts = (flat == 0).nonzero().squeeze(-1).tolist()
    if not starts or starts[0] != 0:
        starts = [0] + starts
    return [end - start for start, end in zip(starts, starts[1:] + [flat.numel()])]


def varlen_attention_forward(query_states: torch.Tensor, key_states: torch.Tensor, value_states: torch.Tensor,
                             attention_mask: torch.Tensor | None, query_length: int, is_causal: bool = True,
                             dropout: float = 0.0, position_ids: torch.Tensor | None = None,
                             softmax_scale: float | None = None, sliding_window: int | None = None,
                             softcap: float | None = None, target_dtype: torch.dtype | None = None,
                             cu_seq_lens_q: torch.Tensor | None = None, s_aux: torch.Tensor | None = None,
                             **_flash_kwargs) -> torch.Tensor:
    """Causal attention within each packed sequence, as flash-attn's varlen kernel computes it.

    Args:
        query_states: [1, S, h, d]; key_states, value_states: [1, S, h_kv, d] (h a multiple of h_kv).
        position_ids: [1, S] packed position ids (each sequence counts from 0).

    Returns:
        [1, S, h, d].
    """
    unsupported = {"attention_mask": attention_mask, "sliding_window": sliding_window, "softcap": softcap,
                   "s_aux": s_aux, "dropout": dropout or None, "is_causal=False": None if is_causal else True}
    named = [name for name, value in unsupported.items() if value is not None]
    if named or query_states.shape[0] != 1:
        raise ValueError(f"the CPU flash stand-in ({CPU_VARLEN_ATTENTION}) runs causal attention over packed "
                         f"sequences only (batch 1, no mask, no dropout): got {named or 'batch > 1'}; set "
                         "actor_rollout_ref.model.use_remove_padding=true")
    if target_dtype is not None and query_states.dtype == torch.float32:
        query_states, key_states, value_states = (t.to(target_dtype) for t in (query_states, key_states, value_states))
    q, k, v = (t.transpose(1, 2) for t in (query_states, key_states, value_states))  # [1, h, S, d]
    gqa = q.shape[1] != k.shape[1]
    outputs, start = [], 0
    for length in _segments(q.shape[2], position_ids, cu_seq_lens_q):
        window = slice(start, start + length)
        outputs.append(torch.nn.functional.scaled_dot_product_attention(
            q[:, :, window], k[:, :, window], v[:, :, window], is_causal=True, scale=softmax_scale, enable_gqa=gqa))
        start += length
    if start != q.shape[2]:
        raise ValueError(f"packed sequences of {start} tokens for a query of {q.shape[2]}")
    return torch.cat(outputs, dim=2).transpose(1, 2)


def register_cpu_flash_attention(_module: ModuleType | None = None) -> None:
    """Register :data:`CPU_VARLEN_ATTENTION` with transformers (attention and mask functions); idempotent."""
    from transformers import AttentionInterface
    from transformers.integrations.flash_attention import flash_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    AttentionInterface.register(CPU_VARLEN_ATTENTION, flash_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(CPU_VARLEN_ATTENTION, flash_attention_mask)


def replace_flash_kernel(module: ModuleType) -> None:
    """Make ``module._flash_attention_forward`` the pure-PyTorch kernel, unless verl already put its Ulysses wrapper
    there (``transformers.integrations.flash_attention`` after verl's monkey patch: the wrapper calls verl's
    module-level copy, which this replaces too)."""
    current = getattr(module, "_flash_attention_forward", None)
    if current is None:
        raise RuntimeError(f"srpo_verl CPU backend: {module.__name__} has no _flash_attention_forward; verl or "
                           "transformers changed")
    if getattr(current, "__name__", "") != "_ulysses_flash_attention_forward":
        module._flash_attention_forward = varlen_attention_forward


def count_all_to_all(module: ModuleType) -> None:
    """Wrap ``verl.utils.ulysses.all_to_all_tensor`` (what verl's SeqAllToAll calls) to count its calls and print
    :data:`ALL_TO_ALL_LINE` once per process."""
    original = module.all_to_all_tensor
    if getattr(original, "_srpo_counted", False):
        return

    def all_to_all_tensor(local_input, scatter_dim, gather_dim, group=None, async_op=False):
        global _all_to_all_calls
        _all_to_all_calls += 1
        output = original(local_input, scatter_dim, gather_dim, group, async_op)
        if _all_to_all_calls == 1 and not async_op:
            print(f"{ALL_TO_ALL_LINE}: {tuple(local_input.shape)} -> {tuple(output.shape)} over "
                  f"{torch.distributed.get_world_size(group)} ranks", flush=True)
        return output

    all_to_all_tensor._srpo_counted = True
    module.all_to_all_tensor = all_to_all_tensor
