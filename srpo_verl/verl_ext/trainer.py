"""The SRPO trainer: verl 0.9.1's synchronous V1 trainer with routing, the teacher pass, the EMA and its checkpoint.

Per step, on top of verl's loop (trainer_base.PPOTrainer._step_once):
  1. after rewards and batch balancing, route every sample (rollout-index order, SRPO_SPEC §1.2) and store the per-row
     distillation flag;
  2. the π_old forward also returns the student's top-K ids on the distilled rows (worker ``old`` phase);
  3. the teacher forward runs on a compact batch of the distilled rows only (teacher prompt + the student's
     response, EMA weights) and returns teacher log-probs at those ids and the teacher's full-vocabulary entropy;
     the entropy weights are normalised here, once, over every SDPO token of the batch (§1.4);
  4. verl computes GRPO advantages and runs the update with the routed loss (srpo_verl.verl_ext.loss);
  5. the EMA teacher moves towards the updated actor (when the step's grad norm is finite), before any checkpoint
     is written; checkpoints hold the teacher next to the actor and resume restores it.
With ``srpo.method=grpo`` none of this runs and the trainer is verl's ``PPOTrainerSync``.
``srpo.teacher=live`` runs step 3 on the actor engine and skips step 5 and the teacher checkpoint; ``base`` skips
the EMA, and its frozen teacher is rebuilt from the model path on resume (checkpoint.base_teacher_problem guards it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace

import ray
import torch
import transfer_queue as tq
from omegaconf import DictConfig, OmegaConf, open_dict
from tensordict import TensorDict
from verl.trainer.ppo.utils import Role
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.debug import marked_timer

from srpo_verl.core.teacher_prompt import demonstration_texts, select_teacher_context, tokenize_teacher_prompt
from srpo_verl.core.weights import entropy_weights
from srpo_verl.console import PREFIX
from srpo_verl.core.entropy_watch import TeacherEntropyWatch
from srpo_verl.core.format_watch import FormatDropWatch
from srpo_verl.core.success_memory import SuccessMemory, group_successes, prompt_key
from srpo_verl.preflight import checkpoint as ckpt
from srpo_verl.preflight import rows
from srpo_verl.preflight.config import teacher_micro_batch_size, teacher_on_actor_engine, validate_run_config
from srpo_verl.verl_ext import loss as L
from srpo_verl.verl_ext import preempt, registration, reward_guard, sample_log, save_guard
from srpo_verl.verl_ext.layout import pack_response_field, parse_rollout_key, rollout_order, route_batch, to_jagged
from srpo_verl.verl_ext.teacher_batch import TeacherBatch, dispatch_order
from srpo_verl.verl_ext.worker import WORKER_SETTINGS_KEY, SRPOWorker

logger = logging.getLogger(__name__)

TEACHER_PARTITION = "srpo_teacher"


def actor_checkpoints_to_keep(trainer_config) -> int | None:
    """How many actor checkpoints verl 0.9.1 keeps (PPOTrainer._save_checkpoint): 1 with the deprecated
    ``remove_previous_ckpt_in_save``, else ``max_actor_ckpt_to_keep`` (None: all). The teacher keeps as many."""
    if trainer_config.get("remove_previous_ckpt_in_save", False):
        return 1
    return trainer_config.get("max_actor_ckpt_to_keep", None)


#: update metrics that must be finite for the EMA teacher to follow the actor (verl's and the routed loss's)
UPDATE_FINITE_METRICS = ("actor/grad_norm", "actor/loss", "actor/pg_loss", "srpo/loss/grpo", "srpo/loss/distill")


def nonfinite_update_metrics(metrics: dict) -> list[str]:
    """``key=value`` of each of UPDATE_FINITE_METRICS present in ``metrics`` and not finite (NaN, ±inf)."""
    return [f"{key}={metrics[key]}" for key in UPDATE_FINITE_METRICS
            if key in metrics and not math.isfinite(float(metrics[key]))]


@dataclass
class RoutedBatch:
    """A step's batch after routing: its TransferQueue meta, the routes, per sample [B] the response length, the
    summed reward and verl's synthetic-padding flag, and {row: demonstration} for the rows whose demonstration comes
    from the success memory."""

    meta: object
    route: object
    response_lens: torch.Tensor
    rewards: torch.Tensor
    is_padding: torch.Tensor
    memory_demos: dict[int, str] = field(default_factory=dict)


class SRPOTrainer(PPOTrainerSync):
    """Registered as ``trainer.v1.trainer_mode=srpo`` (see registration.py)."""

    def __init__(self, config: DictConfig):
        registration.assert_registered(where="trainer process")
        self.srpo = sample_log.with_dump_dir(validate_run_config(config), config.trainer.default_local_dir)
        self._init_run_state()
        self._teacher_micro_batch = teacher_micro_batch_size(config, live=teacher_on_actor_engine(config, self.srpo))
        with open_dict(config):
            # verl compares trainer_mode with "sync" in several places (replay buffer, checkpoints): run as sync.
            config.trainer.v1.trainer_mode = "sync"
            config.actor_rollout_ref[WORKER_SETTINGS_KEY] = OmegaConf.create(
                {f: getattr(self.srpo, f) for f in self.srpo.__dataclass_fields__}
            )
        # reward workers record compute_score's exceptions here (reward_guard); drained once per step
        self._reward_error_log = ray.remote(num_cpus=0)(reward_guard.ErrorLog).options(
            name=reward_guard.ACTOR_NAME, get_if_exists=True).remote()
        self._run_control = ray.remote(num_cpus=0)(preempt.RunControl).options(
            name=preempt.CONTROL_NAME, get_if_exists=True).remote()
        super().__init__(config)

    def _init_run_state(self) -> None:
        """The driver-side state each checkpoint carries next to verl's and the teacher's: the collapse watches
        and the success memory (None when off)."""
        self._format_watch = FormatDropWatch(self.srpo.format_drop_warn)
        self._entropy_watch = TeacherEntropyWatch(self.srpo.teacher_entropy_warn, self.srpo.teacher_entropy_window)
        self._success_memory = (SuccessMemory(self.srpo.success_memory_max_entries)
                                if self.srpo.uses_teacher and self.srpo.success_memory else None)

    # ------------------------------------------------------------------ data rows
    def _init_dataloader(self):
        super()._init_dataloader()
        if rows.checked_before_ray(self.config):
            return
        for name, dataset in (("data.train_files", self.train_dataset), ("data.val_files", self.val_dataset)):
            report = rows.check_dataset(dataset, name, self.config, self.tokenizer)
            for note in rows.summary([report]):
                print(f"{ckpt.PREFIX} {note}", flush=True)

    # ------------------------------------------------------------------ reward failures (reward_guard)
    def _reward_errors(self) -> dict:
        log = getattr(self, "_reward_error_log", None)
        return ray.get(log.drain.remote()) if log is not None else {"count": 0, "by_source": {}, "samples": []}

    def _stop(self, line: str):
        print(f"{ckpt.PREFIX} error: {line}", file=sys.stderr, flush=True)
        return reward_guard.RewardErrorStop(line)

    def step(self, metrics: dict, timing_raw: dict):
        try:
            return super().step(metrics, timing_raw)
        except RuntimeError as error:
            if reward_guard.ALL_FAILED not in str(error):
                raise
            line = reward_guard.all_failed_line(self.global_steps, self._reward_errors(),
                                                reward_guard.reward_fn_name(self.config))
            if line is None:
                raise
            raise self._stop(line) from None

    def _balance_batch(self, batch, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        batch = super()._balance_batch(batch, metrics, logging_prefix=logging_prefix, keep_minibatch=keep_minibatch)
        padding = sum(bool(tag.get("is_padding", False)) for tag in batch.tags)
        n_rows = len(batch.tags)
        expected = (self.config.data.train_batch_size // self.parameter_sync_step
                    * self.config.actor_rollout_ref.rollout.n)
        step_metrics, line = reward_guard.step_verdict(
            self.global_steps, self._reward_errors(), expected, n_rows - padding, padding, n_rows,
            self.srpo.max_reward_error_rate, reward_guard.reward_fn_name(self.config))
        metrics.update(step_metrics)
        if line:
            raise self._stop(line)
        return batch

    # ------------------------------------------------------------------ preemption (preempt.py)
    def on_step_begin(self):
        super().on_step_begin()
        control = getattr(self, "_run_control", None)
        if control is not None and ray.get(control.stop_requested.remote()):
            raise preempt.Preempted(self._stop_for_preemption(control))

    def _stop_for_preemption(self, control) -> str:
        """Save the last complete step unless the tracker names it; report where to resume."""
        done = self.global_steps - 1
        root = os.path.dirname(self._step_folder(0))
        if done > 0 and preempt.last_complete(root) != done:
            started = time.perf_counter()
            self.global_steps = done
            try:
                self._save_checkpoint()
            finally:
                self.global_steps = done + 1
            what = f"saved step {done} in {time.perf_counter() - started:.1f} s"
        else:
            what = "no step completed since the last checkpoint"
        line = (f"preempted (SIGTERM) before step {done + 1}: {what}; "
                + preempt.resume_hint(root, preempt.last_complete(root)))
        print(f"{ckpt.PREFIX} {line}", flush=True)
        ray.get(control.report.remote(line))
        return line

    # ------------------------------------------------------------------ workers
    def _init_resource_pool_mgr(self):
        super()._init_resource_pool_mgr()
        for role in (Role.ActorRollout, Role.ActorRolloutRef, Role.Actor):
            if role in self.role_worker_mapping:
                self.role_worker_mapping[role] = ray.remote(SRPOWorker)

    def _put(self, batch, fields: dict) -> object:
        """Write per-sample fields; keep the meta's extra_info (a put returns a meta without it)."""
        extra = dict(batch.extra_info)
        new = tq.kv_batch_put(
            keys=batch.keys, partition_id=batch.partition_id, fields=TensorDict(fields, batch_size=len(batch))
        )
        new.extra_info = extra
        return new

    # ------------------------------------------------------------------ routing + π_old + teacher
    def _compute_old_log_prob(self, batch, metrics: dict):
        if not self.srpo.uses_teacher:
            return super()._compute_old_log_prob(batch, metrics)
        routed = self._route(batch, metrics)
        batch = routed.meta
        batch.extra_info[L.PHASE] = "old"
        original = batch
        batch = super()._compute_old_log_prob(batch, metrics)
        for meta in (original, batch):
            meta.extra_info.pop(L.PHASE, None)
        with marked_timer("srpo_teacher", self.timing_raw, color="purple"):
            batch = self._teacher_step(replace(routed, meta=batch), metrics)
        watch_metrics, line = self._entropy_watch.update(self.global_steps, metrics)
        metrics.update(watch_metrics)
        if line:
            print(line, flush=True)
        return batch

    def _route(self, batch, metrics: dict):
        fields = ["rm_scores", "response_mask"]
        feedback = None
        if self.srpo.include_environment_feedback:
            fields.append("feedback")
        if self._success_memory is not None:
            fields += ["raw_prompt", "responses"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        rewards = torch.stack([row.sum() for row in data["rm_scores"].unbind()]).float()
        response_lens = data["response_mask"].offsets().diff()
        is_padding = torch.tensor([bool(tag.get("is_padding", False)) for tag in batch.tags])
        if self.srpo.include_environment_feedback:
            feedback = torch.tensor([bool(text) for text in list(data["feedback"])])
        prompt_keys, has_memory = None, None
        if self._success_memory is not None:
            prompt_keys = [prompt_key(list(messages)) for messages in data["raw_prompt"]]
            has_memory = torch.tensor([key in self._success_memory for key in prompt_keys])
        route, route_metrics = route_batch(
            batch.keys, rewards, is_padding, self.srpo.success_threshold, self.srpo.route_mode, feedback, has_memory
        )
        metrics.update(route_metrics)
        memory_demos = {}
        if self._success_memory is not None:
            memory_demos = {i: self._success_memory.lookup(prompt_keys[i])
                            for i in route.memory_demo.nonzero().flatten().tolist()}
            metrics.update(self._remember_successes(batch.keys, route, is_padding, prompt_keys, has_memory,
                                                    data["responses"].unbind()))
        mask = to_jagged(torch.repeat_interleave(route.distill.float(), response_lens), response_lens)
        return RoutedBatch(self._put(batch, {L.DISTILL_MASK: mask}), route, response_lens, rewards, is_padding,
                           memory_demos)

    def _remember_successes(self, keys, route, is_padding, prompt_keys, has_memory, responses) -> dict:
        """Store each group's first correct response (in rollout order: the one its siblings were shown) under its
        prompt, after this step's lookups; the ``srpo/memory/*`` metrics.

        hit_rate: of the groups with no correct rollout, the share whose prompt had an entry (their failures were
        routed to SDPO with it); stored: groups stored this step; entries: prompts held after storing."""
        order = [i for i in rollout_order(keys) if not bool(is_padding[i])]
        uids = [parse_rollout_key(keys[i])[0] for i in order]
        firsts = group_successes(route.correct[order], uids)
        unsolved = {uid: order[pos] for pos, uid in enumerate(uids) if uid not in firsts}
        hits = sum(bool(has_memory[row]) for row in unsolved.values())
        for position in firsts.values():
            row = order[position]
            self._success_memory.store(prompt_keys[row],
                                       self.tokenizer.decode(responses[row], skip_special_tokens=True))
        return {
            "srpo/memory/hit_rate": hits / len(unsolved) if unsolved else 0.0,
            "srpo/memory/unsolved_groups": len(unsolved),
            "srpo/memory/hit_groups": hits,
            "srpo/memory/stored": len(firsts),
            "srpo/memory/entries": len(self._success_memory),
        }

    def _teacher_rows(self, batch, route, memory_demos: dict[int, str]) -> TeacherBatch:
        """The compact teacher batch: teacher prompt + the student's response for each distilled row, balanced over
        the data-parallel ranks by tokens and padded for static micro-batches (teacher_batch.py). The demonstration
        is the row's correct sibling's response, or its ``memory_demos`` entry."""
        rows = route.distill.nonzero().flatten().tolist()
        if not rows:
            return TeacherBatch(rows, [], None, [], 0, 0)
        data = tq.kv_batch_get(
            keys=batch.keys,
            partition_id=batch.partition_id,
            select_fields=["responses", "response_mask", "raw_prompt"]
            + ([] if self.srpo.sampled_token else [L.TOPK_IDS])
            + (["feedback"] if self.srpo.include_environment_feedback else []),
        )
        responses = data["responses"].unbind()
        response_masks = data["response_mask"].unbind()
        # the ids the teacher scores: the student's top-K, or with token-level distillation the sampled token
        query_ids = ([r.unsqueeze(-1) for r in responses] if self.srpo.sampled_token
                     else data[L.TOPK_IDS].unbind())
        raw_prompts = list(data["raw_prompt"])
        feedbacks = list(data["feedback"]) if self.srpo.include_environment_feedback else [None] * len(batch)
        demo_rows = {int(route.demo_index[i]) for i in rows if int(route.demo_index[i]) >= 0}
        decoded = {j: self.tokenizer.decode(responses[j], skip_special_tokens=True) for j in demo_rows}
        chat_kwargs = OmegaConf.to_container(self.config.data.get("apply_chat_template_kwargs", {}) or {})
        prompt_ids, truncated = [], 0
        demos = demonstration_texts(decoded, [int(route.demo_index[i]) for i in rows],
                                    self.srpo.remove_thinking_from_demonstration)
        if memory_demos:
            remembered = demonstration_texts(memory_demos, [i if i in memory_demos else -1 for i in rows],
                                             self.srpo.remove_thinking_from_demonstration)
            demos = [own if memory is None else memory for own, memory in zip(demos, remembered)]
        for i, demo in zip(rows, demos):
            solution, feedback = select_teacher_context(
                demo, feedbacks[i], self.srpo.include_environment_feedback,
                self.srpo.environment_feedback_only_without_solution,
            )
            prompt = tokenize_teacher_prompt(
                self.tokenizer, list(raw_prompts[i]), solution, feedback, self.srpo.max_reprompt_len,
                self.srpo.reprompt_truncation, self.srpo.templates, chat_kwargs,
            )
            prompt_ids.append(torch.tensor(prompt.input_ids, dtype=torch.long))
            truncated += int(prompt.truncated)

        samples = [(tp, responses[i].long(), response_masks[i], query_ids[i].long())
                   for i, tp in zip(rows, prompt_ids, strict=True)]
        seq_lens = [int(tp.numel() + resp.numel()) for tp, resp, _, _ in samples]
        slots = dispatch_order(seq_lens, self._actor_dp_size(), self._teacher_micro_batch)
        eos = torch.tensor([self.tokenizer.eos_token_id], dtype=torch.long)
        pad = (eos, eos, torch.ones(1, dtype=torch.long), torch.zeros(1, self._query_width, dtype=torch.long))
        fields: dict[str, list] = {
            "prompts": [], "responses": [], "response_mask": [], "input_ids": [], "position_ids": [],
            "attention_mask": [], "loss_mask": [], L.QUERY_IDS: [],
        }
        for slot in slots:
            tp, resp, rmask, ids = pad if slot is None else samples[slot]
            seq = torch.cat([tp, resp])
            fields["prompts"].append(tp)
            fields["responses"].append(resp)
            fields["response_mask"].append(rmask.long())
            fields["loss_mask"].append(rmask.long())
            fields["input_ids"].append(seq)
            fields["position_ids"].append(torch.arange(seq.numel()))
            fields["attention_mask"].append(torch.ones_like(seq))
            fields[L.QUERY_IDS].append(ids)
        td = TensorDict(
            {k: torch.nested.as_nested_tensor(v, layout=torch.jagged) for k, v in fields.items()},
            batch_size=len(slots),
        )
        return TeacherBatch(rows, prompt_ids, td, slots, truncated, sum(seq_lens))

    def _actor_dp_size(self) -> int:
        wg = self.actor_rollout_wg
        if "actor" not in wg._dispatch_info:
            wg._dispatch_info["actor"] = wg._query_dispatch_info("actor")
        return max(wg._dispatch_info["actor"]) + 1

    @property
    def _query_width(self) -> int:
        """Ids the teacher scores per token: the top-K, or the sampled token alone."""
        return 1 if self.srpo.sampled_token else self.srpo.topk

    def _teacher_step(self, routed: RoutedBatch, metrics: dict):
        k = self._query_width
        batch, route, response_lens = routed.meta, routed.route, routed.response_lens
        teacher = self._teacher_rows(batch, route, routed.memory_demos)
        rows, td = teacher.rows, teacher.data
        self._dump_routes(routed, {i: int(p.numel()) for i, p in zip(rows, teacher.prompts)})
        n = len(rows)
        logp_rows, entropy_rows = [], []
        if n:
            row_keys = [f"{batch.keys[i]}@teacher" for i in rows]
            keys = [f"srpo-teacher-pad-{j}@{self.global_steps}" if slot is None else row_keys[slot]
                    for j, slot in enumerate(teacher.slots)]
            tags = [{"seq_len": int(s.numel())} for s in td["input_ids"].unbind()]
            meta = tq.kv_batch_put(keys=keys, partition_id=TEACHER_PARTITION, fields=td, tags=tags)
            meta.extra_info = {"temperature": self.config.actor_rollout_ref.rollout.temperature}
            self.actor_rollout_wg.compute_teacher_topk(meta)
            out = tq.kv_batch_get(keys=row_keys, partition_id=TEACHER_PARTITION,
                                  select_fields=[L.TEACHER_LOGP, L.TEACHER_ENTROPY])
            tq.kv_clear(keys=keys, partition_id=TEACHER_PARTITION)
            logp_rows = list(out[L.TEACHER_LOGP].unbind())
            entropy_rows = list(out[L.TEACHER_ENTROPY].unbind())

        distill = route.distill
        masks = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                                select_fields=["response_mask"])["response_mask"].unbind()
        logp_values = torch.cat(logp_rows) if n else torch.zeros(0, k)
        entropy_full = [torch.zeros(int(r)) for r in response_lens.tolist()]
        for i, ent in zip(rows, entropy_rows):
            entropy_full[i] = ent.float()
        sdpo_mask = [masks[i].bool() & bool(distill[i]) for i in range(len(batch))]
        entropy_cat, mask_cat = torch.cat(entropy_full), torch.cat(sdpo_mask)
        weights = entropy_weights(entropy_cat, mask_cat, self.srpo.dw_beta)  # mean 1 over every SDPO token of the step

        batch = self._put(
            batch,
            {
                L.TEACHER_LOGP: pack_response_field(logp_values.float(), response_lens, distill),
                L.DW_WEIGHT: to_jagged(weights, response_lens),
            },
        )
        sample_log.log_step_samples(self, replace(routed, meta=batch), teacher, entropy_full, weights, masks)
        sdpo_weights = weights[mask_cat]
        teacher_mass = torch.cat([row.exp().sum(-1) for row in logp_rows]) if n else torch.zeros(0)
        routed_mask = torch.cat([masks[i].bool() for i in rows]) if n else torch.zeros(0, dtype=torch.bool)
        metrics.update(
            {
                "srpo/teacher/tokens": teacher.tokens,
                "srpo/teacher/samples": n,
                "srpo/teacher/truncated_frac": teacher.truncated / n if n else 0.0,
                "srpo/teacher/entropy_mean": float(entropy_cat[mask_cat].mean()) if mask_cat.any() else 0.0,
                "srpo/teacher/topk_mass": float(teacher_mass[routed_mask].mean()) if routed_mask.any() else 0.0,
                "srpo/dw/weight_mean": float(sdpo_weights.mean()) if sdpo_weights.numel() else 1.0,
                "srpo/dw/weight_min": float(sdpo_weights.min()) if sdpo_weights.numel() else 1.0,
                "srpo/dw/weight_max": float(sdpo_weights.max()) if sdpo_weights.numel() else 1.0,
            }
        )
        return batch

    def _dump_routes(self, routed: RoutedBatch, teacher_prompt_lens: dict[int, int]) -> None:
        if not self.srpo.route_dump_dir:
            return
        os.makedirs(self.srpo.route_dump_dir, exist_ok=True)
        batch, route = routed.meta, routed.route
        path = os.path.join(self.srpo.route_dump_dir, f"step_{self.global_steps}.jsonl")
        with open(path, "w") as out:
            for i, key in enumerate(batch.keys):
                demo = int(route.demo_index[i])
                out.write(json.dumps({
                    "key": key,
                    "reward": float(routed.rewards[i]),
                    "is_padding": bool(routed.is_padding[i]),
                    "correct": bool(route.correct[i]),
                    "distill": bool(route.distill[i]),
                    "demo_key": batch.keys[demo] if demo >= 0 else None,
                    "memory_demo": route.memory_demo is not None and bool(route.memory_demo[i]),
                    "response_len": int(routed.response_lens[i]),
                    "teacher_prompt_len": teacher_prompt_lens.get(i),
                }) + "\n")

    # ------------------------------------------------------------------ update + EMA
    def _update_actor(self, batch, metrics: dict):
        batch = super()._update_actor(batch, metrics)
        for key in [k for k in metrics if k.startswith("actor/srpo/")]:
            metrics[key[len("actor/"):]] = metrics.pop(key)
        metrics.update(L.mass_gap_mean(metrics))
        if self.srpo.teacher_ema:
            with marked_timer("srpo_ema", self.timing_raw, color="purple"):
                metrics["srpo/teacher/ema_applied"] = float(self._ema_update(metrics))
        return batch

    def _ema_update(self, metrics: dict) -> bool:
        """Move the EMA teacher towards the updated actor unless the update is non-finite; True when applied.

        A non-finite loss or grad norm skips the EMA (verl skips the optimizer step on a non-finite grad norm, so the
        actor is unchanged). Non-finite actor weights (the worker checks them in its EMA pass and writes nothing)
        stop the run: they cannot recover, and every later checkpoint would hold them."""
        bad = nonfinite_update_metrics(metrics)
        if bad:
            print(f"{PREFIX} step {self.global_steps}: {', '.join(bad)}: EMA teacher update skipped", flush=True)
            return False
        per_rank = self.actor_rollout_wg.ema_update_teacher(self.srpo.ema_rate)  # worker.ema_update_teacher
        bad_ranks = [rank for rank, r in enumerate(per_rank) if not r["actor_finite"]]
        if bad_ranks:
            raise RuntimeError(
                f"step {self.global_steps}: the actor's weights are not finite after the update on rank(s) "
                f"{bad_ranks} (loss and grad norm were finite); the EMA teacher was left as it was and this step is "
                "not checkpointed. Resume from the last checkpoint (trainer.resume_mode=auto), e.g. with a lower "
                "actor_rollout_ref.actor.optim.lr"
            )
        metrics["srpo/teacher/ema_max_abs_delta"] = max(r["max_abs_delta"] for r in per_rank)
        return all(r["applied"] for r in per_rank)

    # ------------------------------------------------------------------ validation: the collapse warning
    def _validate(self):
        metrics = super()._validate()
        metrics["srpo/val/reward_errors"] = float(self._reward_errors()["count"])
        watch_metrics, line = self._format_watch.update(self.global_steps, metrics)
        if line:
            print(line, flush=True)
        return {**metrics, **watch_metrics}

    # ------------------------------------------------------------------ checkpoints
    def _step_folder(self, step: int) -> str:
        folder = self.config.trainer.default_local_dir
        if not os.path.isabs(folder):
            folder = os.path.join(os.getcwd(), folder)
        return os.path.join(folder, f"global_step_{step}")

    def _save_checkpoint(self):
        try:
            self._save_checkpoint_steps()
        except Exception as error:
            failure = save_guard.save_failure(error, os.path.dirname(self._step_folder(0)), self.global_steps)
            print(f"{ckpt.PREFIX} error: {failure}", file=sys.stderr, flush=True)
            raise failure from None

    def _save_checkpoint_steps(self):
        # The teacher goes first: verl's save ends by marking the step as the latest complete checkpoint. It rotates
        # with the actor (the same number kept); trainer.default_hdfs_dir is refused at start-up for the teacher
        # methods (config.py: verl 0.9.1's FSDP checkpoint manager never uploads, so neither would reach it).
        # live has no teacher state; base's frozen teacher is rebuilt from actor_rollout_ref.model.path on resume, so
        # only a fingerprint of those files is written (teacher_base.json: the resume refuses other files).
        if self.srpo.teacher_ema:
            path = os.path.join(self._step_folder(self.global_steps), "teacher")
            self.actor_rollout_wg.save_teacher(path, self.global_steps,
                                               max_ckpt_to_keep=actor_checkpoints_to_keep(self.config.trainer))
        elif self.srpo.teacher_from_model_path:
            ckpt.write_base_teacher(self._step_folder(self.global_steps), self.config.actor_rollout_ref.model.path)
        if self._success_memory is not None:
            ckpt.write_success_memory(self._step_folder(self.global_steps), self._success_memory.state_dict())
        ckpt.write_watches(self._step_folder(self.global_steps), {
            "format_drop": self._format_watch.state_dict(), "teacher_entropy": self._entropy_watch.state_dict()})
        super()._save_checkpoint()

    def _load_checkpoint(self):
        # The driver verified the checkpoint (srpo_verl.main); found again here so that an unreadable tracker or a
        # missing step folder is named even when the trainer is started another way.
        root = os.path.dirname(self._step_folder(0))
        layout = ckpt.layout_of(self.config, self.srpo.teacher_ema)
        trainer = self.config.trainer
        resume_from = trainer.get("resume_from_path", None)
        if resume_from and not os.path.isabs(resume_from):
            resume_from = os.path.join(os.getcwd(), resume_from)
        folder = ckpt.resume_folder(trainer.resume_mode, root, resume_from, layout)
        super()._load_checkpoint()
        if folder is None or self.global_steps == 0:
            return
        if self.srpo.teacher_from_model_path:
            problem = ckpt.base_teacher_problem(folder, self.config.actor_rollout_ref.model.path)
            if problem:
                raise ckpt.CheckpointError(problem)
        if self.srpo.teacher_ema:
            path = os.path.join(folder, "teacher")
            if not os.path.isdir(path):
                raise FileNotFoundError(
                    f"resuming srpo.method={self.srpo.method} from {folder}, which has no teacher/ (the EMA teacher's "
                    "state): it was deleted or lost, or the step was written by a run without a teacher "
                    "(srpo.method=grpo or verl's own trainer). " + ckpt.offer_previous(root, self.global_steps, layout)
                )
            self.actor_rollout_wg.load_teacher(path)
        if self._success_memory is not None:
            state = ckpt.read_success_memory(folder)
            try:
                self._success_memory.load_state_dict(state)
            except ValueError as error:
                raise ckpt.CheckpointError(f"cannot resume {folder}: {ckpt.SUCCESS_MEMORY_FILE}: {error}") from None
            print(f"{PREFIX} success memory: {len(self._success_memory)} prompts restored from {folder}", flush=True)
        self._load_watches(folder)
        print(ckpt.resumed_line(self.global_steps, folder, self.srpo.teacher_ema,
                                self.srpo.teacher if self.srpo.uses_teacher else None), flush=True)


    def _load_watches(self, folder) -> None:
        """Restore the collapse watches (their baselines span the whole run); a step written without them (or with
        another srpo.teacher_entropy_window) restarts them, said in one line: they only warn, they never train."""
        state = ckpt.read_watches(folder)
        try:
            if state is None:
                raise ValueError(f"{folder} has no {ckpt.WATCHES_FILE}")
            self._format_watch.load_state_dict(state["format_drop"])
            self._entropy_watch.load_state_dict(state["teacher_entropy"])
        except (KeyError, TypeError, ValueError) as error:
            self._format_watch = FormatDropWatch(self.srpo.format_drop_warn)
            self._entropy_watch = TeacherEntropyWatch(self.srpo.teacher_entropy_warn, self.srpo.teacher_entropy_window)
            print(f"{PREFIX} collapse warnings restart their baselines at step {self.global_steps} ({error})",
                  flush=True)


# When this module is imported before verl's trainer, the import hook fires while it is half initialised and defers
# to this line (see registration._register_trainer).
registration.register_trainer_class(sys.modules[registration.TRAINER_MODULE], SRPOTrainer)
