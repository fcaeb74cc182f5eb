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

Under Ulysses sequence parallelism (``ulysses_sequence_parallel_size`` = S > 1) verl pads the packed sequence of
nnz tokens to a multiple of S and hands SP rank r only the logits of positions [r·L, (r+1)·L), L = (nnz + pad) / S;
it then all-gathers every [1, L] output and drops the pad. The processor therefore works on the response tokens
whose predicting position lies in this rank's slice (:func:`local_response_tokens`) and returns [1, L] outputs;
every other input (ids, stored top-K ids, teacher log-probs) is whole on every rank of the group.

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


def sequence_slice_start(local_len: int, total: int) -> int:
    """First packed position of this rank's slice: 0 without Ulysses SP, else r·L for SP rank r (verl's
    ``ulysses_pad_and_slice_inputs``: the packed sequence of ``total`` tokens padded to S·L, rank r keeps
    [r·L, (r+1)·L))."""
    from verl.utils.ulysses import get_ulysses_sequence_parallel_rank, get_ulysses_sequence_parallel_world_size

    sp_size = get_ulysses_sequence_parallel_world_size()
    if sp_size == 1:
        if local_len != total:
            raise ValueError(f"the logits processor got {local_len} positions for {total} packed tokens")
        return 0
    if not total <= local_len * sp_size < total + sp_size:
        raise ValueError(f"Ulysses SP={sp_size}: {local_len} positions per rank do not cover {total} packed tokens "
                         "padded to a multiple of the SP size")
    return get_ulysses_sequence_parallel_rank() * local_len


def local_response_tokens(positions: torch.Tensor, start: int, local_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The response tokens predicted inside the slice [start, start + local_len) of the packed sequence.

    Args:
        positions: long [M] packed positions predicting every response token (:func:`response_positions`).

    Returns:
        (tokens long [m]: indices into M, in order; local long [m]: their positions within the slice).
    """
    inside = (positions >= start) & (positions < start + local_len)
    tokens = inside.nonzero().squeeze(-1)
    return tokens, positions[tokens] - start


def sampled_token_ids(data, positions: torch.Tensor) -> torch.Tensor:
    """long [M]: the token each of the packed ``positions`` predicts, i.e. the next input id (the labels verl's own
    ``logprobs_from_logits`` would use: ``input_ids`` rolled by one); for the response positions, the response."""
    input_ids = data["input_ids"].values()
    return input_ids[positions.to(input_ids.device) + 1].long()


def update_outputs(settings: SRPOSettings, logits: torch.Tensor, data, positions: torch.Tensor,
                   tokens: torch.Tensor | None = None):
    """(sampled-token log-probs [m], divergence [m], top-K mass gap [m]) of the response tokens ``tokens`` (long
    [m] indices into the micro-batch's M response tokens; all of them when None), predicted at ``positions`` (long
    [m]) of ``logits`` [L, V]: the first two differentiable in ``logits``, from one pass over each response row
    (log Z and every gathered id at once); the divergence and the detached mass gap (student − teacher mass on the
    stored top-K ids) are 0 on tokens not distilled. With ``srpo.distill_mode=sampled_token`` the divergence is the
    token-level loss on the sampled token and the mass gap is 0 (no top-K)."""
    response_lens = _lengths(data["responses"])
    total_tokens = int(response_lens.sum())
    if tokens is None:
        tokens = torch.arange(total_tokens, device=logits.device)
    tokens = tokens.to(logits.device)
    rows = distilled_rows(data)
    # the teacher's fields hold the distilled rows' tokens (one placeholder token on the other rows): the value
    # index of response token t is stored_index[t] (-1 when t's row is not distilled)
    stored = select_rows(_lengths(data[TEACHER_LOGP]), rows).to(logits.device)
    stored_index = torch.full((total_tokens,), -1, dtype=torch.long, device=logits.device)
    stored_index[select_rows(response_lens, rows).to(logits.device)] = stored
    token_stored = stored_index[tokens]
    distilled = (token_stored >= 0).nonzero().squeeze(-1)  # indices into m
    token_stored = token_stored[distilled]
    sampled = sampled_token_ids(data, response_positions_of(data).to(logits.device)[tokens]).to(logits.device)
    ids = sampled.unsqueeze(-1)
    if not settings.sampled_token and distilled.numel():
        # column 0 the sampled token, columns 1.. the stored top-K on distilled tokens (the sampled token again
        # elsewhere: repeated ids are allowed and get no gradient)
        stored_ids = data[TOPK_IDS].values().to(logits.device)[token_stored].long()
        ids = ids.repeat(1, 1 + stored_ids.shape[-1])
        ids[distilled, 1:] = stored_ids
    logp, _ = gather_logprobs_with_entropy(
        logits, ids, chunk_size=settings.logits_chunk_size, backend=settings.logits_backend, rows=positions
    )
    divergence = logp.new_zeros(logp.shape[0])
    gap = torch.zeros(logp.shape[0], device=logp.device)
    if distilled.numel():
        teacher = data[TEACHER_LOGP].values().to(logits.device)[token_stored]
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


def response_positions_of(data) -> torch.Tensor:
    """long [M]: the packed positions predicting the micro-batch's response tokens (whole sequence)."""
    return response_positions(_lengths(data["prompts"]), _lengths(data["responses"]))


def _topk_id_outputs(settings: SRPOSettings, logits: torch.Tensor, data, positions: torch.Tensor,
                     tokens: torch.Tensor) -> dict:
    """The π_old pass's top-K ids of the distilled rows' response tokens among ``tokens`` (long [m] indices into
    M, predicted at ``positions`` [m] of ``logits`` [L, V]), three per int64 value, one output key per value column
    ([1, L] each; 0 on every other position)."""
    response_lens = _lengths(data["responses"])
    distilled_token = torch.zeros(int(response_lens.sum()), dtype=torch.bool, device=logits.device)
    distilled_token[select_rows(response_lens, distilled_rows(data)).to(logits.device)] = True
    picked = positions[distilled_token[tokens]]
    if logits.shape[-1] > 1 << ID_BITS:
        raise ValueError(f"vocabulary of {logits.shape[-1]} tokens: the packed top-K ids hold ids below 2^{ID_BITS}")
    ids = topk_token_ids(logits, settings.topk, chunk_size=settings.logits_chunk_size, rows=picked)
    full = _scatter_rows(pack_token_ids(ids), picked, logits.shape[0])
    return {topk_output_key(i): full[:, i].unsqueeze(0) for i in range(full.shape[-1])}


def logits_processor(settings: SRPOSettings, student_logits: torch.Tensor, data,
                     stash: StudentLogitsStash | None = None) -> dict[str, torch.Tensor]:
    """Per-token outputs of one micro-batch; ``student_logits`` is [1, L, V] (temperature applied): the whole
    packed sequence (L = nnz), or this rank's slice of it under Ulysses SP (module docstring); ``stash``: the
    trust-region teacher's student logits (``srpo.teacher=trust_region`` only)."""
    phase = _non_tensor(data, PHASE)
    logits = student_logits[0]
    local_len = logits.shape[0]
    whole = response_positions_of(data).to(logits.device)
    start = sequence_slice_start(local_len, int(data["input_ids"].values().numel()))
    tokens, positions = local_response_tokens(whole, start, local_len)
    chunk, backend = settings.logits_chunk_size, settings.logits_backend

    if phase == "old":
        outputs = {} if settings.sampled_token else _topk_id_outputs(settings, logits, data, positions, tokens)
        with torch.no_grad():
            sampled = sampled_token_ids(data, whole[tokens]).to(logits.device)
            log_probs, _ = gather_logprobs_with_entropy(logits, sampled, chunk_size=chunk, backend=backend,
                                                        rows=positions)
        outputs[LOG_PROBS] = _scatter_rows(log_probs, positions, local_len).unsqueeze(0)
        return outputs

    if phase == "teacher_student":
        if stash is None:
            raise RuntimeError("teacher_student phase without a student-logits stash (srpo.teacher=trust_region only)")
        stash.push(logits[positions], data)
        return {STASH_OUTPUT: logits.new_zeros(1, local_len, dtype=torch.float32)}

    if phase == "teacher":
        query = data[QUERY_IDS].values().to(logits.device)[tokens]
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
        full_logp = _scatter_rows(logp, positions, local_len)
        outputs = {teacher_output_key(i): full_logp[:, i].unsqueeze(0) for i in range(query.shape[-1])}
        outputs[TEACHER_ENTROPY_OUTPUT] = _scatter_rows(entropy, positions, local_len).unsqueeze(0)
        return outputs

    if phase == "update":
        log_probs, divergence, gap = update_outputs(settings, logits, data, positions, tokens)
        return {
            LOG_PROBS: _scatter_rows(log_probs, positions, local_len).unsqueeze(0),
            DIVERGENCE: _scatter_rows(divergence, positions, local_len).unsqueeze(0),
            MASS_GAP: _scatter_rows(gap, positions, local_len).unsqueeze(0),
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
