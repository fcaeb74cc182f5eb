"""Token layout helpers between verl's packed sequences and the response frame (plain torch, no verl import).

verl's engines return per-token outputs for whole sequences (prompt + response) packed row after row, and the
output at position t belongs to the prediction of token t+1. Response token r of a row whose prompt has P tokens is
therefore predicted at packed position offset + P − 1 + r. The SRPO fields that travel with a sample hold only its
response tokens (``[R, ...]`` per row), and rows that are not distilled carry a single placeholder token, so the
teacher data of a batch costs memory only where the teacher ran.
"""

from __future__ import annotations

import torch


def response_positions(prompt_lens: torch.Tensor, response_lens: torch.Tensor) -> torch.Tensor:
    """Packed positions whose outputs predict the response tokens, row after row.

    Args:
        prompt_lens, response_lens: long [B] (every prompt has at least one token).

    Returns:
        long [Σ R_i]: for row i, ``start_i + P_i − 1 + r`` for r in 0..R_i−1, with ``start_i`` the row's offset in
        the packed sequence of lengths P_i + R_i.
    """
    if bool((prompt_lens < 1).any()):
        raise ValueError(f"every prompt needs at least one token, got lengths {prompt_lens.tolist()}")
    seq_lens = prompt_lens + response_lens
    starts = torch.cumsum(seq_lens, 0) - seq_lens
    first = starts + prompt_lens - 1
    within = torch.arange(int(response_lens.sum()), device=prompt_lens.device)
    row_offsets = torch.cumsum(response_lens, 0) - response_lens
    return torch.repeat_interleave(first - row_offsets, response_lens) + within


#: bits per token id in a packed value: three ids fit a non-negative int64 for vocabularies up to 2^21 tokens
ID_BITS = 21
IDS_PER_VALUE = 63 // ID_BITS


def packed_id_width(k: int) -> int:
    """int64 values that hold ``k`` token ids (:func:`pack_token_ids`)."""
    return -(-k // IDS_PER_VALUE)


def pack_token_ids(ids: torch.Tensor) -> torch.Tensor:
    """[M, K] token ids (each in [0, 2^21)) → [M, ceil(K / 3)] int64, id j in bits 21·(j mod 3) of value j // 3.

    verl's engine returns one value per packed token and key; three ids per value cut the π_old pass's top-K
    outputs from K int64 values per token to ceil(K / 3)."""
    ids = ids.long()
    m, k = ids.shape
    width = packed_id_width(k)
    padded = ids.new_zeros(m, width * IDS_PER_VALUE)
    padded[:, :k] = ids
    shifts = torch.arange(IDS_PER_VALUE, device=ids.device, dtype=torch.long) * ID_BITS
    return (padded.view(m, width, IDS_PER_VALUE) << shifts).sum(-1)


def unpack_token_ids(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of :func:`pack_token_ids`: [M, ceil(K / 3)] int64 → [M, K] int64."""
    shifts = torch.arange(IDS_PER_VALUE, device=packed.device, dtype=torch.long) * ID_BITS
    ids = (packed.long().unsqueeze(-1) >> shifts) & ((1 << ID_BITS) - 1)
    return ids.reshape(packed.shape[0], -1)[:, :k]


def select_rows(lengths: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Flat indices of the tokens of the selected rows of a ragged batch.

    Args:
        lengths: long [B] tokens per row.
        rows: bool [B] which rows to take.

    Returns:
        long [Σ_{rows} lengths]: positions in the concatenated ``[Σ lengths, ...]`` values, row after row.
    """
    offsets = torch.cumsum(lengths, 0) - lengths
    keep = lengths * rows.long()
    within = torch.arange(int(keep.sum()), device=lengths.device)
    keep_offsets = torch.cumsum(keep, 0) - keep
    return torch.repeat_interleave(offsets - keep_offsets, keep) + within


def to_jagged(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A nested jagged tensor [B, j, ...] from concatenated ``values`` [Σ lengths, ...] and per-row lengths."""
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.long, device=values.device)
    offsets[1:] = torch.cumsum(lengths.to(values.device), 0)
    return torch.nested.nested_tensor_from_jagged(values, offsets)


def placeholder_lengths(response_lens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Per-row lengths of a response-frame field stored only for ``rows``: R_i there, 1 elsewhere."""
    return torch.where(rows, response_lens, torch.ones_like(response_lens))


def pack_response_field(
    values: torch.Tensor, response_lens: torch.Tensor, rows: torch.Tensor, fill: float | int = 0
) -> torch.Tensor:
    """Store a response-frame field only for the selected rows.

    Args:
        values: [Σ_{rows} R_i, ...] the selected rows' tokens, row after row.
        response_lens: long [B].
        rows: bool [B].
        fill: value of the one placeholder token of every other row.

    Returns:
        nested jagged [B, j, ...] with j = R_i on ``rows`` and 1 elsewhere.
    """
    lengths = placeholder_lengths(response_lens, rows)
    out = torch.full((int(lengths.sum()), *values.shape[1:]), fill, dtype=values.dtype, device=values.device)
    out[select_rows(lengths, rows)] = values
    return to_jagged(out, lengths)


def parse_rollout_key(key: str) -> tuple[str, int, int]:
    """Split verl's V1 sample key ``{uid}_{session}_{index}`` (the uid may contain underscores)."""
    uid, session, index = key.rsplit("_", 2)
    return uid, int(session), int(index)


def rollout_order(keys: list[str]) -> list[int]:
    """Batch positions sorted by (uid as first seen, session, index): the rollout-index order that routing needs,
    whatever order verl's batch balancing left the batch in."""
    parsed = [parse_rollout_key(k) for k in keys]
    first_seen: dict[str, int] = {}
    for uid, _, _ in parsed:
        first_seen.setdefault(uid, len(first_seen))
    return sorted(range(len(keys)), key=lambda i: (first_seen[parsed[i][0]], parsed[i][1], parsed[i][2]))


def route_batch(
    keys: list[str],
    rewards: torch.Tensor,
    is_padding: torch.Tensor,
    threshold: float,
    mode: str,
    feedback_available: torch.Tensor | None = None,
    has_memory: torch.Tensor | None = None,
):
    """Route a (balanced, reordered) verl batch: :func:`srpo_verl.core.route_samples` in rollout-index order.

    Padding rows (verl's synthetic ``is_padding`` samples) are never routed, never demonstrations and do not count
    in the route metrics.

    Args:
        keys: B sample keys ``{uid}_{session}_{index}``.
        rewards: float [B] sequence rewards.
        is_padding: bool [B].
        has_memory: bool [B] or None (memory off): the sample's prompt has a success-memory entry
            (:func:`srpo_verl.core.success_memory.add_memory_teachers`).

    Returns:
        (RouteResult with every tensor in batch order and ``demo_index`` as batch positions,
         the ``srpo/route/*`` metrics over the real samples).
    """
    from srpo_verl.core.routing import RouteResult, route_metrics, route_samples

    order = [i for i in rollout_order(keys) if not bool(is_padding[i])]
    index = torch.tensor(order, dtype=torch.long)
    uids = [parse_rollout_key(keys[i])[0] for i in order]
    feedback = None if feedback_available is None else feedback_available[index]
    route = route_samples(rewards[index], uids, threshold=threshold, mode=mode, feedback_available=feedback)
    if has_memory is not None:
        from srpo_verl.core.success_memory import add_memory_teachers

        route = add_memory_teachers(route, has_memory[index])

    batch = len(keys)
    correct = torch.zeros(batch, dtype=torch.bool)
    teacher = torch.zeros(batch, dtype=torch.bool)
    distill = torch.zeros(batch, dtype=torch.bool)
    demo = torch.full((batch,), -1, dtype=torch.long)
    correct[index], teacher[index], distill[index] = route.correct, route.teacher_available, route.distill
    demo[index] = torch.where(route.demo_index >= 0, index[route.demo_index.clamp(min=0)], route.demo_index)
    memory = None
    if route.memory_demo is not None:
        memory = torch.zeros(batch, dtype=torch.bool)
        memory[index] = route.memory_demo
    return RouteResult(correct, demo, teacher, distill, route.mode, memory), route_metrics(route)
