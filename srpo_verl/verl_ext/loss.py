"""The loss callable installed on verl's actor and teacher engines with ``set_loss_fn``.

verl 0.9.1's FSDP engine calls one function in two ways per micro-batch (``transformer_impl.py``):
  * as a *logits processor* ``fn(student_logits=[1, nnz, V], data=micro_batch)`` when the non-tensor flag
    ``distillation_use_topk`` is set: it returns per-token outputs of shape [1, nnz] (one key per value);
  * as the *loss* ``fn(model_output=..., data=micro_batch, dp_group=...)``: it returns (scalar loss, metrics).
The non-tensor ``srpo_phase`` in the data says which pass this is:
  ``old``     (actor, π_old forward)  → the student's top-K ids on distilled rows, K outputs;
  ``teacher`` (teacher engine)        → teacher log-probs at the student's ids (K outputs) and the full-vocabulary
                                        teacher entropy;
  ``update``  (actor, training)       → the per-token divergence on distilled rows (one output, with gradient),
                                        then the routed loss of :mod:`srpo_verl.core.losses`.
The logits the processor sees are already divided by the rollout temperature.
"""

from __future__ import annotations

import torch

from srpo_verl.core.logprobs import gather_logprobs_with_entropy, topk_token_ids
from srpo_verl.core.losses import distillation_token_loss, routed_policy_loss
from srpo_verl.verl_ext.config import SRPOSettings
from srpo_verl.verl_ext.layout import response_positions, select_rows

PHASE = "srpo_phase"
DISTILL_MASK = "srpo_distill_mask"  # [R] per row: 1 on distilled rows
TOPK_IDS = "srpo_topk_ids"  # [R or 1, K] per row, student top-K ids (placeholder row when not distilled)
QUERY_IDS = "srpo_query_ids"  # teacher batch: [R, K] ids to score
TEACHER_LOGP = "srpo_teacher_logp"  # [R or 1, K]
TEACHER_ENTROPY = "srpo_teacher_entropy"  # [R]
DW_WEIGHT = "srpo_dw_weight"  # [R]
DIVERGENCE = "srpo_divergence"  # processor output in the update phase


def topk_output_key(k: int) -> str:
    return f"srpo_topk_id_{k}"


def teacher_output_key(k: int) -> str:
    return f"srpo_tlogp_{k}"


TEACHER_ENTROPY_OUTPUT = "srpo_tentropy"


def _lengths(nested: torch.Tensor) -> torch.Tensor:
    return nested.offsets().diff()


def _non_tensor(data, key, default=None):
    from verl.utils import tensordict_utils as tu

    return tu.get_non_tensor_data(data=data, key=key, default=default)


def distilled_rows(data) -> torch.Tensor:
    """bool [b]: rows of the micro-batch routed to self-distillation (from the per-token ``srpo_distill_mask``)."""
    mask = data[DISTILL_MASK]
    values = mask.values()
    lengths = _lengths(mask).to(values.device)
    row_of_token = torch.repeat_interleave(
        torch.arange(lengths.numel(), device=values.device), lengths, output_size=values.numel()
    )
    hits = torch.zeros(lengths.numel(), device=values.device).index_add_(0, row_of_token, (values > 0).float())
    return hits > 0


def _scatter_rows(values: torch.Tensor, positions: torch.Tensor, total: int) -> torch.Tensor:
    """[total] (or [total, ...]) zeros with ``values`` at ``positions``; differentiable in ``values``."""
    out = values.new_zeros((total, *values.shape[1:]))
    return out.index_copy(0, positions, values)


def logits_processor(settings: SRPOSettings, student_logits: torch.Tensor, data) -> dict[str, torch.Tensor]:
    """Per-token outputs of one micro-batch; ``student_logits`` is [1, nnz, V] (temperature applied)."""
    phase = _non_tensor(data, PHASE)
    logits = student_logits[0]
    total = logits.shape[0]
    prompt_lens, response_lens = _lengths(data["prompts"]), _lengths(data["responses"])
    positions = response_positions(prompt_lens, response_lens).to(logits.device)
    chunk, backend = settings.logits_chunk_size, settings.logits_backend

    if phase == "old":
        rows = distilled_rows(data)
        picked = positions[select_rows(response_lens, rows).to(logits.device)]
        k = settings.topk
        ids = topk_token_ids(logits, k, chunk_size=chunk, rows=picked)
        full = _scatter_rows(ids, picked, total)
        return {topk_output_key(i): full[:, i].unsqueeze(0) for i in range(k)}

    if phase == "teacher":
        query = data[QUERY_IDS].values().to(logits.device)
        with torch.no_grad():
            logp, entropy = gather_logprobs_with_entropy(
                logits, query, chunk_size=chunk, backend=backend, rows=positions
            )
        full_logp = _scatter_rows(logp, positions, total)
        outputs = {teacher_output_key(i): full_logp[:, i].unsqueeze(0) for i in range(query.shape[-1])}
        outputs[TEACHER_ENTROPY_OUTPUT] = _scatter_rows(entropy, positions, total).unsqueeze(0)
        return outputs

    if phase == "update":
        rows = distilled_rows(data)
        picked = positions[select_rows(response_lens, rows).to(logits.device)]
        stored_lens = _lengths(data[TOPK_IDS])
        stored = select_rows(stored_lens, rows)
        ids = data[TOPK_IDS].values()[stored].to(logits.device)
        teacher = data[TEACHER_LOGP].values()[stored].to(logits.device)
        student, _ = gather_logprobs_with_entropy(logits, ids, chunk_size=chunk, backend=backend, rows=picked)
        divergence = distillation_token_loss(student, teacher, settings.alpha, settings.add_tail)
        return {DIVERGENCE: _scatter_rows(divergence, picked, total).unsqueeze(0)}

    raise ValueError(f"srpo logits processor called with {PHASE}={phase!r}; expected old, teacher or update")


def srpo_loss(
    settings: SRPOSettings,
    actor_config=None,
    model_output=None,
    data=None,
    dp_group=None,
    student_logits: torch.Tensor | None = None,
):
    """verl loss function / logits processor (see the module docstring). Bind ``settings`` and ``actor_config``
    with ``functools.partial``; the teacher engine gets ``actor_config=None``."""
    if student_logits is not None:
        return logits_processor(settings, student_logits, data)
    phase = _non_tensor(data, PHASE)
    if phase in ("old", "teacher"):
        device = next(iter(model_output.values())).device if model_output else "cpu"
        return torch.zeros((), device=device), {}
    if phase != "update":
        raise ValueError(f"srpo loss called with {PHASE}={phase!r}; the SRPO worker sets it on every call")
    return routed_update_loss(settings, actor_config, model_output, data)


def routed_update_loss(settings: SRPOSettings, actor_config, model_output, data):
    """L_final of one micro-batch with verl's global mini-batch counts (``batch_num_tokens``,
    ``global_batch_size``, ``dp_size``), so the engine's sum over micro-batches and ranks is the spec's single
    token-mean (§1.5). Metrics are globally normalised parts, aggregated by SUM like verl's own loss."""
    from verl.utils.metric import AggregationType, Metric
    from verl.workers.utils.padding import no_padding_2_padding

    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    divergence = no_padding_2_padding(model_output[DIVERGENCE], data)
    fields = ["response_mask", "old_log_probs", "advantages", DW_WEIGHT]
    if "rollout_is_weights" in data.keys():
        fields.append("rollout_is_weights")
    padded = data.select(*fields).to_padded_tensor()
    rows = distilled_rows(data).to(log_prob.device)
    response_mask = padded["response_mask"].to(torch.bool)
    out = routed_policy_loss(
        settings.loss_config(actor_config),
        log_prob,
        padded["old_log_probs"],
        padded["advantages"],
        response_mask,
        rows,
        entropy_weights=padded[DW_WEIGHT] if settings.uses_entropy_weights else None,
        rollout_is_weights=padded.get("rollout_is_weights", None),
        loss_agg_mode=actor_config.loss_agg_mode,
        global_token_count=data["batch_num_tokens"],
        global_seq_count=data["global_batch_size"],
        dp_size=data["dp_size"],
        divergence=divergence,
    )
    metrics = {
        "srpo/loss/grpo": Metric(value=out.grpo, aggregation=AggregationType.SUM),
        "srpo/loss/distill": Metric(value=out.distill, aggregation=AggregationType.SUM),
        "pg_loss": Metric(value=out.loss, aggregation=AggregationType.SUM),
    }
    return out.loss, metrics
