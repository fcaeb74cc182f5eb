"""The loss callable installed on verl's actor and teacher engines with ``set_loss_fn``.

verl 0.9.1's FSDP engine calls one function in two ways per micro-batch (``transformer_impl.py``):
  * as a *logits processor* ``fn(student_logits=[1, nnz, V], data=micro_batch)`` when the non-tensor flag
    ``distillation_use_topk`` is set: it returns per-token outputs of shape [1, nnz] (one key per value);
  * as the *loss* ``fn(model_output=..., data=micro_batch, dp_group=...)``: it returns (scalar loss, metrics).
The non-tensor ``srpo_phase`` in the data says which pass this is:
  ``old``     (actor, π_old forward)  → the sampled-token log-probs of every response token and the student's top-K
                                        ids on distilled rows, three ids per int64 value (layout.pack_token_ids):
                                        1 + ceil(K / 3) outputs;
  ``teacher`` (teacher engine)        → teacher log-probs at the student's ids (K outputs; 1, the sampled token,
                                        with ``srpo.distill_mode=sampled_token``) and the full-vocabulary teacher
                                        entropy; with ``srpo.teacher=trust_region`` of the logits
                                        lerp(reference, student, rate), the student's half taken by:
  ``teacher_student`` (actor)         → nothing returned: the actor's logits on the teacher batch, at the response
                                        positions, are kept in a :class:`StudentLogitsStash` for the next
                                        ``teacher`` call (trust_region only);
  ``update``  (actor, training)       → the sampled-token log-probs of every response token and the per-token
                                        divergence on distilled rows (two outputs, with gradient) and the detached
                                        per-token top-K mass gap (student − teacher, :func:`topk_mass_gap`), then
                                        the routed loss of :mod:`srpo_verl.core.losses`.
The logits the processor sees are already divided by the rollout temperature.

In the ``old`` and ``update`` phases the SRPO worker sets ``distillation_only``, so verl never computes its own
sampled-token log-probs: its ``logprobs_from_logits`` uses flash-attn's Triton cross-entropy when flash-attn is
installed, whose backward writes d loss / d logits into the logits buffer (``inplace_backward``, behind autograd's
version counter), the very tensor our autograd Function saved for its own backward. Our log-probs come from the
same one read of each row as the distillation terms, so the gradient and the PPO ratio do not depend on which
cross-entropy verl would have picked, and π_old and π_θ come from the same function.
"""

from __future__ import annotations

from collections import deque

import torch

from srpo_verl.core.diagnostics import topk_mass_gap
from srpo_verl.core.logprobs import gather_logprobs_with_entropy, topk_token_ids
from srpo_verl.core.losses import distillation_token_loss, routed_policy_loss, sampled_token_distillation_loss
from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.layout import ID_BITS, pack_token_ids, response_positions, select_rows

PHASE = "srpo_phase"
DISTILL_MASK = "srpo_distill_mask"  # [R] per row: 1 on distilled rows
TOPK_IDS = "srpo_topk_ids"  # [R or 1, K] per row, student top-K ids (placeholder row when not distilled)
QUERY_IDS = "srpo_query_ids"  # teacher batch: [R, K] ids to score
TEACHER_LOGP = "srpo_teacher_logp"  # [R or 1, K]
TEACHER_ENTROPY = "srpo_teacher_entropy"  # [R]
DW_WEIGHT = "srpo_dw_weight"  # [R]
DIVERGENCE = "srpo_divergence"  # processor output in the update phase
LOG_PROBS = "srpo_log_probs"  # processor output in the old and update phases: sampled-token log-probs
MASS_GAP = "srpo_topk_mass_gap"  # processor output in the update phase: student − teacher top-K mass (detached)

#: update metrics of the top-K mass gap: its sum over the micro-batch's SDPO tokens and their count (both SUM
#: aggregated, so their ratio is the step's mean over SDPO tokens: :func:`mass_gap_mean`)
MASS_GAP_SUM_METRIC = "srpo/topk/mass_gap_sum"
SDPO_TOKENS_METRIC = "srpo/topk/sdpo_tokens"
MASS_GAP_METRIC = "srpo/topk/mass_gap"

#: non-tensor flags the worker sets on the old, teacher and update batches: verl calls the logits processor and
#: skips its own sampled-token log-probs (see the module docstring).
PROCESSOR_FLAGS = {"distillation_use_topk": True, "distillation_only": True}


def topk_output_key(k: int) -> str:
    return f"srpo_topk_id_{k}"


def teacher_output_key(k: int) -> str:
    return f"srpo_tlogp_{k}"


TEACHER_ENTROPY_OUTPUT = "srpo_tentropy"
STASH_OUTPUT = "srpo_stashed"  # the teacher_student phase's one (all-zero) output: the engine expects some


class StudentLogitsStash:
    """The trust-region teacher's student half, between the actor's and the reference's pass over the same teacher
    micro-batch (SDPO's ``TrustRegionTeacher``: logits = lerp(reference, student, rate)).

    One entry per ``teacher_student`` processor call: the actor's temperature-scaled logits at the response
    positions [M, V] (fp32, no grad) and a fingerprint of the micro-batch's input ids; the reference's ``teacher``
    call pops it and refuses one taken on other tokens. The worker runs both passes one micro-batch at a time, so
    it holds one micro-batch's response logits at most."""

    def __init__(self):
        self._entries: deque = deque()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def fingerprint(data) -> tuple[int, int]:
        """(tokens, Σ_j (j + 1)·id_j mod 2^61 − 1): position-sensitive, one cheap pass over the input ids."""
        ids = data["input_ids"].values().long()
        weights = torch.arange(1, ids.numel() + 1, device=ids.device)
        return int(ids.numel()), int((ids * weights).remainder((1 << 61) - 1).sum())

    def push(self, logits: torch.Tensor, data) -> None:
        self._entries.append((logits.detach().float().clone(), self.fingerprint(data)))

    def pop(self, data, rows: int, vocab: int) -> torch.Tensor:
        if not self._entries:
            raise RuntimeError("trust-region teacher: the reference pass found no student logits (the actor's "
                               "teacher_student pass must run first on the same micro-batch)")
        logits, fingerprint = self._entries.popleft()
        if fingerprint != self.fingerprint(data) or tuple(logits.shape) != (rows, vocab):
            raise RuntimeError(f"trust-region teacher: the student logits {tuple(logits.shape)} were taken on another "
                               f"micro-batch than the reference's ({rows} response tokens, vocabulary {vocab})")
        return logits

    def clear(self) -> None:
        self._entries.clear()


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


def sampled_token_ids(data, positions: torch.Tensor) -> torch.Tensor:
    """long [M]: the token each of the packed ``positions`` predicts, i.e. the next input id (the labels verl's own
    ``logprobs_from_logits`` would use: ``input_ids`` rolled by one); for the response positions, the response."""
    input_ids = data["input_ids"].values()
    return input_ids[positions.to(input_ids.device) + 1].long()


def update_ids(sampled: torch.Tensor, response_lens: torch.Tensor, rows: torch.Tensor,
               stored_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ids the update pass gathers for every response token, and which tokens are distilled.

    Args:
        sampled: long [M] the sampled token of each response token (M = Σ R_i).
        response_lens: long [B]; rows: bool [B] distilled rows.
        stored_ids: long [Σ_{rows} R_i, K] the student's π_old top-K ids of the distilled rows' tokens.

    Returns:
        (ids long [M, 1 + K] with column 0 the sampled token and columns 1.. the stored top-K on distilled tokens
         (the sampled token again elsewhere: repeated ids are allowed and get no gradient), or [M, 1] when no row
         is distilled; distilled long [Σ_{rows} R_i] indices into M).
    """
    distilled = select_rows(response_lens, rows).to(sampled.device)
    if distilled.numel() == 0:
        return sampled.unsqueeze(-1), distilled
    ids = sampled.unsqueeze(-1).repeat(1, 1 + stored_ids.shape[-1])
    ids[distilled, 1:] = stored_ids
    return ids, distilled


def update_outputs(settings: SRPOSettings, logits: torch.Tensor, data, positions: torch.Tensor):
    """(sampled-token log-probs [M], divergence [M], top-K mass gap [M]): the first two differentiable in
    ``logits`` [nnz, V], from one pass over each response row (log Z and every gathered id at once); the divergence
    and the detached mass gap (student − teacher mass on the stored top-K ids) are 0 on tokens not distilled.
    With ``srpo.distill_mode=sampled_token`` the divergence is the token-level loss on the sampled token and the
    mass gap is 0 (no top-K)."""
    response_lens = _lengths(data["responses"])
    rows = distilled_rows(data)
    # the teacher's field holds the distilled rows' tokens (one placeholder token on the other rows)
    stored = select_rows(_lengths(data[TEACHER_LOGP]), rows)
    sampled = sampled_token_ids(data, positions).to(logits.device)
    if settings.sampled_token:
        ids, distilled = sampled.unsqueeze(-1), select_rows(response_lens, rows).to(sampled.device)
    else:
        stored_ids = data[TOPK_IDS].values()[stored].to(logits.device).long()
        ids, distilled = update_ids(sampled, response_lens, rows, stored_ids)
    logp, _ = gather_logprobs_with_entropy(
        logits, ids, chunk_size=settings.logits_chunk_size, backend=settings.logits_backend, rows=positions
    )
    divergence = logp.new_zeros(logp.shape[0])
    gap = torch.zeros(logp.shape[0], device=logp.device)
    if distilled.numel():
        teacher = data[TEACHER_LOGP].values()[stored].to(logits.device)
        # bf16 logits (mixed precision) reach the kernels as they are; the divergence's inputs must be fp32
        if logp.dtype != torch.float32 or teacher.dtype != torch.float32:
            raise TypeError(f"the divergence needs fp32 log-probs, got student {logp.dtype} and teacher "
                            f"{teacher.dtype} (logits {logits.dtype})")
        if settings.sampled_token:
            token_div = sampled_token_distillation_loss(logp[distilled, 0], teacher[:, 0])
        else:
            token_div = distillation_token_loss(logp[distilled, 1:], teacher, settings.alpha, settings.add_tail)
            gap = gap.index_copy(0, distilled, topk_mass_gap(logp[distilled, 1:], teacher))
        divergence = divergence.index_copy(0, distilled, token_div)
    return logp[:, 0], divergence, gap


def _topk_id_outputs(settings: SRPOSettings, logits: torch.Tensor, data, positions: torch.Tensor) -> dict:
    """The π_old pass's top-K ids of the distilled rows' response tokens, three per int64 value, one output key per
    value column ([1, nnz] each; 0 on every other token)."""
    rows = distilled_rows(data)
    picked = positions[select_rows(_lengths(data["responses"]), rows).to(logits.device)]
    if logits.shape[-1] > 1 << ID_BITS:
        raise ValueError(f"vocabulary of {logits.shape[-1]} tokens: the packed top-K ids hold ids below 2^{ID_BITS}")
    ids = topk_token_ids(logits, settings.topk, chunk_size=settings.logits_chunk_size, rows=picked)
    full = _scatter_rows(pack_token_ids(ids), picked, logits.shape[0])
    return {topk_output_key(i): full[:, i].unsqueeze(0) for i in range(full.shape[-1])}


def logits_processor(settings: SRPOSettings, student_logits: torch.Tensor, data,
                     stash: StudentLogitsStash | None = None) -> dict[str, torch.Tensor]:
    """Per-token outputs of one micro-batch; ``student_logits`` is [1, nnz, V] (temperature applied); ``stash``:
    the trust-region teacher's student logits (``srpo.teacher=trust_region`` only)."""
    phase = _non_tensor(data, PHASE)
    logits = student_logits[0]
    total = logits.shape[0]
    prompt_lens, response_lens = _lengths(data["prompts"]), _lengths(data["responses"])
    positions = response_positions(prompt_lens, response_lens).to(logits.device)
    chunk, backend = settings.logits_chunk_size, settings.logits_backend

    if phase == "old":
        outputs = {} if settings.sampled_token else _topk_id_outputs(settings, logits, data, positions)
        with torch.no_grad():
            sampled = sampled_token_ids(data, positions).to(logits.device)
            log_probs, _ = gather_logprobs_with_entropy(logits, sampled, chunk_size=chunk, backend=backend,
                                                        rows=positions)
        outputs[LOG_PROBS] = _scatter_rows(log_probs, positions, total).unsqueeze(0)
        return outputs

    if phase == "teacher_student":
        if stash is None:
            raise RuntimeError("teacher_student phase without a student-logits stash (srpo.teacher=trust_region only)")
        stash.push(logits[positions], data)
        return {STASH_OUTPUT: logits.new_zeros(1, total, dtype=torch.float32)}

    if phase == "teacher":
        query = data[QUERY_IDS].values().to(logits.device)
        with torch.no_grad():
            if settings.teacher == "trust_region":
                student = stash.pop(data, positions.numel(), logits.shape[-1]).to(logits.device)
                # torch.lerp(reference, student, rate), in place on the gathered rows (a copy already)
                mixed = logits[positions].float().lerp_(student, settings.trust_region_rate)
                del student
                logp, entropy = gather_logprobs_with_entropy(mixed, query, chunk_size=chunk, backend=backend)
            else:
                logp, entropy = gather_logprobs_with_entropy(
                    logits, query, chunk_size=chunk, backend=backend, rows=positions
                )
        full_logp = _scatter_rows(logp, positions, total)
        outputs = {teacher_output_key(i): full_logp[:, i].unsqueeze(0) for i in range(query.shape[-1])}
        outputs[TEACHER_ENTROPY_OUTPUT] = _scatter_rows(entropy, positions, total).unsqueeze(0)
        return outputs

    if phase == "update":
        log_probs, divergence, gap = update_outputs(settings, logits, data, positions)
        return {
            LOG_PROBS: _scatter_rows(log_probs, positions, total).unsqueeze(0),
            DIVERGENCE: _scatter_rows(divergence, positions, total).unsqueeze(0),
            MASS_GAP: _scatter_rows(gap, positions, total).unsqueeze(0),
        }

    raise ValueError(f"srpo logits processor called with {PHASE}={phase!r}; expected old, teacher, teacher_student "
                     "or update")


def srpo_loss(
    settings: SRPOSettings,
    actor_config=None,
    model_output=None,
    data=None,
    dp_group=None,
    student_logits: torch.Tensor | None = None,
    stash: StudentLogitsStash | None = None,
):
    """verl loss function / logits processor (see the module docstring). Bind ``settings``, ``actor_config`` and
    (trust_region) ``stash`` with ``functools.partial``; the teacher engine gets ``actor_config=None``."""
    if student_logits is not None:
        return logits_processor(settings, student_logits, data, stash)
    phase = _non_tensor(data, PHASE)
    if phase in ("old", "teacher", "teacher_student"):
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

    # our processor's log-probs: the worker sets distillation_only, so verl's model_output["log_probs"] is absent.
    # One response-frame conversion (a loop over the rows) for all per-token outputs: [b, R, 2 or 3].
    keys = [LOG_PROBS, DIVERGENCE] + ([MASS_GAP] if MASS_GAP in model_output else [])
    per_token = no_padding_2_padding(torch.stack([model_output[key].values() for key in keys], dim=-1), data)
    log_prob, divergence = per_token[..., 0], per_token[..., 1]
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
    if MASS_GAP in model_output:
        sdpo_tokens = response_mask & rows.unsqueeze(-1)
        gap = per_token[..., 2].detach()
        metrics[MASS_GAP_SUM_METRIC] = Metric(value=gap[sdpo_tokens].sum(), aggregation=AggregationType.SUM)
        metrics[SDPO_TOKENS_METRIC] = Metric(value=float(sdpo_tokens.sum()), aggregation=AggregationType.SUM)
    return out.loss, metrics


def mass_gap_mean(metrics: dict) -> dict:
    """The step's mean top-K mass gap over its SDPO tokens, ``srpo/topk/mass_gap``, from the update's summed
    parts (:data:`MASS_GAP_SUM_METRIC` / :data:`SDPO_TOKENS_METRIC`, removed from ``metrics``); {} without SDPO
    tokens. Both parts are averaged alike over ranks and mini-batches by verl, so the ratio is exact."""
    total = metrics.pop(MASS_GAP_SUM_METRIC, None)
    count = metrics.pop(SDPO_TOKENS_METRIC, None)
    if total is None or not count:
        return {}
    return {MASS_GAP_METRIC: float(total) / float(count)}
