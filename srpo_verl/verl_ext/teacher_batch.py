"""The compact teacher batch's row order and padding for dispatch over the actor's data-parallel ranks.

verl's dispatch hands rank r the r-th contiguous chunk of a batch, in batch order; its own main batch is reordered
first so that every rank gets about the same number of tokens (``trainer.balance_batch``). Teacher sequences are
the longest of a step (teacher prompt with a demonstration + response), so the teacher batch is balanced the same
way, with verl's partitioner. With static micro-batches the batch is padded so that every rank holds a multiple of
the configured micro-batch size (or all its rows in one micro-batch when it has fewer): the engine never falls
back to a smaller micro-batch for want of a divisor. Pad rows are two tokens long and their outputs discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict
from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions

#: tokens of a pad row (a one-token prompt and a one-token response)
PAD_ROW_TOKENS = 2


def rows_per_rank(real_rows: int, dp_size: int, micro_batch_size: int | None) -> int:
    """Rows each rank receives: ceil(real_rows / dp_size), rounded up to a multiple of the static micro-batch
    size when that is smaller (``None``: dynamic batching, no rounding)."""
    per_rank = -(-real_rows // dp_size)
    if micro_batch_size:
        micro = min(micro_batch_size, per_rank)
        per_rank = -(-per_rank // micro) * micro
    return per_rank


def dispatch_order(seq_lens: list[int], dp_size: int, micro_batch_size: int | None = None) -> list[int | None]:
    """Slot order of the padded teacher batch: entry j is the index into ``seq_lens`` of the row placed at
    position j, or None for a pad row; rank r receives positions [r·m, (r+1)·m) with m = len(order) / dp_size,
    and the ranks' token counts are balanced by Karmarkar-Karp over the real and pad rows' lengths."""
    if not seq_lens:
        return []
    total = dp_size * rows_per_rank(len(seq_lens), dp_size, micro_batch_size)
    lengths = list(seq_lens) + [PAD_ROW_TOKENS] * (total - len(seq_lens))
    if dp_size == 1:
        parts = [list(range(total))]
    else:
        parts = get_seqlen_balanced_partitions(lengths, dp_size, equal_size=True)
    return [i if i < len(seq_lens) else None for part in parts for i in part]


def rank_tokens(order: list[int | None], seq_lens: list[int], dp_size: int) -> list[int]:
    """Tokens each rank receives under ``order`` (pad rows count :data:`PAD_ROW_TOKENS`)."""
    per_rank = len(order) // dp_size
    return [sum(PAD_ROW_TOKENS if i is None else seq_lens[i] for i in order[r * per_rank:(r + 1) * per_rank])
            for r in range(dp_size)]


@dataclass
class TeacherBatch:
    """The teacher pass's input for one step.

    rows: the distilled batch rows; prompts: their teacher prompt ids (same order as ``rows``);
    data: the engine batch in dispatch order, pad rows included (None when nothing is distilled);
    slots: for each row of ``data``, its index into ``rows``, or None for a pad row;
    truncated: teacher prompts cut to ``srpo.max_reprompt_len``; tokens: teacher tokens of the real rows.
    """

    rows: list[int]
    prompts: list[torch.Tensor]
    data: TensorDict | None
    slots: list[int | None]
    truncated: int
    tokens: int
