"""SRPO's hybrid worker: verl's ActorRolloutRefWorker plus an EMA self-teacher engine.

``srpo.teacher`` picks the teacher's weights: ``ema`` (the paper) and ``base`` (the frozen initial weights, no EMA)
build the teacher engine below; ``live`` builds none and runs the teacher pass on the actor engine (the current,
pre-update policy), with the same processor and the same compact batch; ``trust_region`` runs both, one
micro-batch at a time: the actor's logits on the teacher batch are stashed, and the base teacher's pass mixes them
into its own (loss.StudentLogitsStash).

verl builds a reference engine only when a KL term is on (and then scores every sample), ``set_loss_fn`` reaches
only the actor, and checkpoints hold only the actor, so the teacher lives here (docs/SRPO_ON_VERL.md):
  * ``init_model``: verl's models, then the routed loss on the actor and a forward-only teacher engine built like
    verl's reference (deep copy of ``actor_rollout_ref.ref``; model-only checkpoints);
  * ``compute_log_prob``: in the ``old`` phase also returns the student's top-K ids of the distilled rows, and the
    sampled-token log-probs come from the logits processor, not verl's cross-entropy (``distillation_only``);
  * ``update_actor``: turns on the logits processor when the batch carries SRPO fields, again with
    ``distillation_only`` (verl's in-place flash-attn cross-entropy would overwrite the logits our backward reads);
  * ``compute_teacher_topk``: teacher log-probs at the student's ids + teacher entropy, on a compact teacher batch;
  * ``ema_update_teacher``, ``save_teacher``, ``load_teacher``.
With LoRA (``model.lora_rank > 0``) no teacher engine is built: every kind scores on the actor engine, ``base`` with
the adapters disabled, ``ema`` with an EMA copy of the adapters swapped in (adapter_teacher.py).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from copy import deepcopy
from functools import partial

import torch
from omegaconf import open_dict
from tensordict import TensorDict
from verl.single_controller.base.decorator import Dispatch, make_nd_compute_dataproto_dispatch_fn, register
from verl.trainer.config.config import CheckpointConfig
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.device import get_device_name, get_torch_device
from verl.utils.memory_utils import aggressive_empty_cache
from verl.utils.profiler import DistProfiler
from verl.workers.config import ActorConfig, HFModelConfig, MtpConfig
from verl.workers.engine_workers import (
    ActorRolloutRefWorker,
    TrainingWorker,
    TrainingWorkerConfig,
    _with_routing_replay_flag,
)

from srpo_verl.core.ema import ema_update_
from srpo_verl.verl_ext import loss as srpo_loss_module
from srpo_verl.verl_ext.adapter_teacher import AdapterEMA
from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.layout import (
    pack_response_field,
    packed_id_width,
    response_positions,
    select_rows,
    to_jagged,
    unpack_token_ids,
)
from srpo_verl.verl_ext.registration import assert_registered
from srpo_verl.verl_ext.teacher_layout import derive_teacher_ref

logger = logging.getLogger(__name__)

#: where the trainer puts the `srpo:` group for the workers (they only receive `actor_rollout_ref`).
WORKER_SETTINGS_KEY = "srpo"


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _all_ranks_agree(local_ok: bool) -> bool:
    """True when ``local_ok`` holds on every rank (one all-reduce of a flag; this rank alone without a group)."""
    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return local_ok
    flag = torch.tensor([int(local_ok)], dtype=torch.int32, device=get_device_name())
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _synchronize_device() -> None:
    """Drain the device queue: verl offloads with non_blocking copies, a host read before that sees stale data."""
    device = get_torch_device()
    if device.is_available():
        device.synchronize()


def _response_frame(values: torch.Tensor, data, rows: torch.Tensor | None) -> torch.Tensor:
    """Packed per-token outputs [nnz, ...] → response-frame nested field (only ``rows`` kept, see layout.py)."""
    prompt_lens = data["prompts"].offsets().diff()
    response_lens = data["responses"].offsets().diff()
    positions = response_positions(prompt_lens, response_lens).to(values.device)
    if rows is None:
        return to_jagged(values[positions], response_lens)
    picked = positions[select_rows(response_lens, rows).to(values.device)]
    return pack_response_field(values[picked], response_lens, rows)


def _stack_outputs(output: TensorDict, keys: list[str]) -> torch.Tensor:
    """K per-token nested outputs [b, j] → one [nnz, K] tensor (the engine allows only 1-D outputs per key)."""
    return torch.stack([output.pop(key).values() for key in keys], dim=-1)


class SRPOWorker(ActorRolloutRefWorker):
    """ActorRolloutRefWorker with the SRPO teacher and loss; ``srpo.method=grpo`` behaves exactly like verl's."""

    #: ``actor_rollout_ref.model.lora_rank > 0`` (set in __init__; class defaults for workers built without it)
    lora: bool = False
    adapter_ema: AdapterEMA | None = None

    def __init__(self, config, role, distillation_config=None, **kwargs):
        super().__init__(config, role, distillation_config=distillation_config, **kwargs)
        self.srpo = SRPOSettings.from_config(config.get(WORKER_SETTINGS_KEY, None))
        self.teacher: TrainingWorker | None = None
        self.lora = int(config.model.get("lora_rank", 0) or 0) > 0
        self.adapter_ema = None  # LoRA + srpo.teacher=ema: the EMA of the adapters only (init_model)

    # ------------------------------------------------------------------ set-up
    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self):
        assert_registered(where="Ray worker")
        super().init_model()
        if not (self.srpo.uses_teacher and self._is_actor):
            return
        actor_config: ActorConfig = omega_conf_to_dataclass(self.config.actor)
        self.student_logits = srpo_loss_module.StudentLogitsStash() if self.srpo.teacher == "trust_region" else None
        self.loss_fn = partial(srpo_loss_module.srpo_loss, self.srpo, actor_config, stash=self.student_logits)
        self.actor.set_loss_fn(self.loss_fn)
        if self.lora:  # the base weights are shared: no teacher engine for any kind (adapter_teacher.py)
            if self.srpo.teacher_ema:
                _synchronize_device()
                self.adapter_ema = AdapterEMA(self.actor.engine.module)
            logger.info("SRPO teacher: %s on the actor engine's LoRA base (%s)%s", self.srpo.teacher, self.srpo.method,
                        f"; adapter EMA {self.adapter_ema.nbytes} bytes" if self.adapter_ema else "")
            return
        if not self.srpo.teacher_engine:  # live: the actor engine scores the teacher batch (its loss fn handles it)
            logger.info("SRPO teacher: live (the actor engine, %s); no teacher engine", self.srpo.method)
            return
        self.teacher = self._build_teacher()
        self.teacher.set_loss_fn(partial(srpo_loss_module.srpo_loss, self.srpo, None, stash=self.student_logits))
        self._check_teacher_shards()
        # verl empties the device cache at the end of its init_model so that a colocated vLLM sees the free memory;
        # the teacher was built after that
        aggressive_empty_cache(force_sync=True)
        logger.info("SRPO teacher engine built (%s, teacher %s, EMA rate %s)", self.srpo.method, self.srpo.teacher,
                    self.srpo.ema_rate if self.srpo.teacher_ema else "none")

    def _check_teacher_shards(self) -> None:
        """Every teacher shard is fp32 and has the actor shard's shape on this rank (the EMA pairs them 1:1)."""
        teacher = dict(self._teacher_module().named_parameters())
        actor = dict(self.actor.engine.module.named_parameters())
        if set(teacher) != set(actor):
            missing, extra = sorted(set(actor) - set(teacher)), sorted(set(teacher) - set(actor))
            raise ValueError(f"the EMA teacher's parameters differ from the actor's (missing {missing[:3]}, extra "
                             f"{extra[:3]}): check actor_rollout_ref.{{actor,ref}}.strategy and fsdp_config.wrap_policy")
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        for name, actor_param in actor.items():
            t, a = _local(teacher[name].data), _local(actor_param.data)
            if t.dtype != torch.float32:
                raise ValueError(f"the EMA teacher's {name} is {t.dtype}; the EMA must accumulate in fp32: set "
                                 "actor_rollout_ref.ref.fsdp_config.model_dtype=fp32")
            if t.shape != a.shape:
                raise ValueError(f"rank {rank}: the EMA teacher's shard of {name} is {tuple(t.shape)}, the actor's "
                                 f"is {tuple(a.shape)}: the teacher must be sharded like the actor "
                                 "(actor_rollout_ref.actor.fsdp_config.fsdp_size / strategy)")

    def _build_teacher(self) -> TrainingWorker:
        """A forward-only engine from a deep copy of `actor_rollout_ref.ref` (verl mutates its ref config), with the
        actor's FSDP layout (teacher_layout.py: the shards the EMA writes must be the actor's)."""
        ref = derive_teacher_ref(self.config)
        rollout = self.config.rollout
        with open_dict(ref):
            ref.ppo_mini_batch_size = self.config.actor.ppo_mini_batch_size
            ref.ppo_micro_batch_size = ref.pop("log_prob_micro_batch_size", None)
            micro = ref.pop("log_prob_micro_batch_size_per_gpu", None)
            dynamic = ref.pop("log_prob_use_dynamic_bsz", False)
            max_tokens = ref.pop("log_prob_max_token_len_per_gpu", None)
            # The teacher scores what the actor scores: its log-prob batching unless ref.* says otherwise.
            ref.ppo_micro_batch_size_per_gpu = micro if micro is not None else rollout.log_prob_micro_batch_size_per_gpu
            ref.use_dynamic_bsz = dynamic or rollout.log_prob_use_dynamic_bsz
            ref.ppo_max_token_len_per_gpu = max_tokens if max_tokens is not None else rollout.log_prob_max_token_len_per_gpu
        teacher_config: ActorConfig = omega_conf_to_dataclass(ref)
        model_config: HFModelConfig = omega_conf_to_dataclass(self.config.model)
        teacher_config.model_config = deepcopy(model_config)
        teacher_config.model_config.mtp = MtpConfig(enable=False)  # as verl's reference: no multi-token prediction
        training_config = TrainingWorkerConfig(
            model_type=teacher_config.model_config.get("model_type", "language_model"),
            model_config=teacher_config.model_config,
            engine_config=teacher_config.engine,
            optimizer_config=teacher_config.optim,
            # a forward-only engine has no optimizer to save
            checkpoint_config=CheckpointConfig(save_contents=["model"], load_contents=["model"]),
        )
        engine_config = training_config.engine_config
        engine_config.use_dynamic_bsz = ref.use_dynamic_bsz
        engine_config.infer_max_token_len_per_gpu = ref.ppo_max_token_len_per_gpu
        engine_config.infer_micro_batch_size_per_gpu = ref.ppo_micro_batch_size_per_gpu
        engine_config.use_remove_padding = model_config.get("use_remove_padding", False)
        teacher = TrainingWorker(config=training_config)
        teacher.reset()
        return teacher

    def _teacher_module(self):
        return self._teacher_engine().engine.module

    def _teacher_engine(self) -> TrainingWorker:
        """The engine the teacher pass runs on: the teacher engine (ema, base), or the actor's (live; every kind with
        LoRA)."""
        if self.srpo.teacher == "live" or getattr(self, "lora", False):
            return self.actor
        if self.teacher is None:
            raise RuntimeError(f"srpo.teacher={self.srpo.teacher}: the teacher engine was not built (init_model)")
        return self.teacher

    def _require_ema(self, what: str) -> None:
        if not self.srpo.teacher_ema:
            raise RuntimeError(f"{what} with srpo.teacher={self.srpo.teacher}: only the ema teacher has an EMA and a "
                               "teacher checkpoint (the SRPO trainer never calls it for live or base)")

    # ------------------------------------------------------------------ forward passes
    # The decorators are verl's own on ActorRolloutRefWorker.compute_log_prob / update_actor /
    # compute_ref_log_prob (profiler ranges; MoE routing replay on for the actor, off for a reference-like pass).
    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="actor"))
    @DistProfiler.annotate(color="blue", role="actor_compute_log_prob")
    @_with_routing_replay_flag(enabled=True)
    def compute_log_prob(self, data: TensorDict) -> TensorDict:
        if tu.get_non_tensor_data(data=data, key=srpo_loss_module.PHASE, default=None) != "old":
            output = self.actor.infer_batch(data)
            return output.cpu() if output is not None else None
        k = self.srpo.topk
        # distillation_only: verl's own sampled-token log-probs are skipped; the processor returns them (loss.py)
        tu.assign_non_tensor(data, compute_loss=True, **srpo_loss_module.PROCESSOR_FLAGS)
        output = self.actor.infer_batch(data)
        if output is None:
            return None
        if not self.srpo.sampled_token:  # token-level distillation scores the sampled token: no top-K ids
            packed = _stack_outputs(output, [srpo_loss_module.topk_output_key(i) for i in range(packed_id_width(k))])
            ids = unpack_token_ids(packed, k)
            rows = srpo_loss_module.distilled_rows(data)
            output[srpo_loss_module.TOPK_IDS] = _response_frame(ids.to(torch.int32), data, rows)
        output["log_probs"] = output.pop(srpo_loss_module.LOG_PROBS)
        return output.cpu()

    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="actor"))
    @DistProfiler.annotate(color="red", role="actor_update", scheduled=True)
    @_with_routing_replay_flag(enabled=True)
    def update_actor(self, data: TensorDict) -> TensorDict:
        if self.srpo.uses_teacher:
            if srpo_loss_module.TEACHER_LOGP not in data.keys():
                raise RuntimeError("SRPO update without teacher fields: the SRPO trainer must run the teacher step")
            # distillation_only: verl's cross-entropy (flash-attn's in-place Triton kernel when installed) never
            # runs on the logits our autograd Function saved; the processor returns differentiable log-probs.
            tu.assign_non_tensor(data, **srpo_loss_module.PROCESSOR_FLAGS)
            tu.assign_non_tensor_data(data, srpo_loss_module.PHASE, "update")
        output = self.actor.train_mini_batch(data=data)
        return output.cpu() if output is not None else None

    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="actor"))
    @DistProfiler.annotate(color="olive", role="teacher_compute_topk")
    @_with_routing_replay_flag(enabled=False)
    def compute_teacher_topk(self, data: TensorDict) -> TensorDict:
        """Teacher log-probs at the student's stored ids and the teacher's entropy, in the response frame (on the
        teacher engine, or on the actor engine for ``srpo.teacher=live``: the actor's weights before this step's
        update, under verl's eval mode and no_grad like the π_old pass)."""
        k = data[srpo_loss_module.QUERY_IDS].values().shape[-1]
        engine = self._teacher_engine()
        # distillation_only: the engine skips the sampled-token log-probs over the teacher batch (nothing reads them)
        tu.assign_non_tensor(data, compute_loss=True, calculate_entropy=False, **srpo_loss_module.PROCESSOR_FLAGS)
        engine_config = engine.engine_config
        if not engine_config.use_dynamic_bsz:
            # the trainer pads each rank's share to a multiple of the configured size (teacher_batch.py)
            rows, configured = data.batch_size[0], engine_config.infer_micro_batch_size_per_gpu or 1
            micro = min(rows, configured)
            if rows % micro:
                raise RuntimeError(f"this rank's teacher batch has {rows} rows, not a multiple of the micro-batch "
                                   f"size {micro}: the SRPO trainer pads it (srpo_verl/verl_ext/teacher_batch.py)")
            tu.assign_non_tensor(data, micro_batch_size_per_gpu=micro)
        tu.assign_non_tensor_data(data, srpo_loss_module.PHASE, "teacher")
        if self.srpo.teacher == "trust_region":
            output = self._trust_region_pass(data)
        else:
            if getattr(self, "lora", False) and self.srpo.teacher == "base":
                tu.assign_non_tensor(data, no_lora_adapter=True)  # verl's infer_batch: engine.disable_adapter()
            adapter_ema = getattr(self, "adapter_ema", None)
            swapped = adapter_ema.swapped_in(engine.engine.module) if adapter_ema is not None else nullcontext()
            with swapped:
                output = engine.infer_batch(data)
        if output is None:
            return None
        logp = _stack_outputs(output, [srpo_loss_module.teacher_output_key(i) for i in range(k)])
        entropy = output.pop(srpo_loss_module.TEACHER_ENTROPY_OUTPUT).values()
        result = TensorDict(
            {
                srpo_loss_module.TEACHER_LOGP: _response_frame(logp.float(), data, None),
                srpo_loss_module.TEACHER_ENTROPY: _response_frame(entropy.float(), data, None),
            },
            batch_size=data.batch_size[0],
        )
        return result.cpu()

    def _trust_region_pass(self, data: TensorDict) -> TensorDict | None:
        """The trust-region teacher, one micro-batch at a time: the actor's forward (the current policy, before
        this step's update: the official teacher's student inside a single-optimizer-step update) stashes its
        logits at the response positions, then the base teacher's forward mixes them into its own,
        lerp(base, student, srpo.trust_region_rate). One stash of one micro-batch's response logits at most. With
        LoRA both forwards run on the actor engine: the student with its adapters, the reference without.

        Micro-batches: the static teacher micro-batch (the trainer pads every rank to whole ones), or one row with
        dynamic batching (every rank holds the same number of rows, so all ranks run as many forwards)."""
        lora = getattr(self, "lora", False)  # the reference is the actor's base weights, adapters disabled
        reference_engine = self.actor if lora else self.teacher
        rows = data.batch_size[0]
        micro = 1 if reference_engine.engine_config.use_dynamic_bsz else tu.get(data, "micro_batch_size_per_gpu", 1)
        outputs = []
        self.student_logits.clear()
        for start in range(0, rows, micro):
            part = list(range(start, min(rows, start + micro)))
            student = tu.index_select_tensor_dict(data, part)
            tu.assign_non_tensor(student, use_dynamic_bsz=False, micro_batch_size_per_gpu=len(part))
            tu.assign_non_tensor_data(student, srpo_loss_module.PHASE, "teacher_student")
            self.actor.infer_batch(student)
            reference = tu.index_select_tensor_dict(data, part)
            tu.assign_non_tensor(reference, use_dynamic_bsz=False, micro_batch_size_per_gpu=len(part))
            if lora:
                tu.assign_non_tensor(reference, no_lora_adapter=True)  # verl's infer_batch: engine.disable_adapter()
            outputs.append(reference_engine.infer_batch(reference))
        if len(self.student_logits):
            raise RuntimeError(f"trust-region teacher: {len(self.student_logits)} stashed student micro-batch(es) "
                               "were never mixed (the two engines split the teacher batch differently)")
        if outputs[0] is None:
            return None
        keys = [key for key, value in outputs[0].items() if isinstance(value, torch.Tensor) and value.is_nested]
        return TensorDict({key: tu.concat_nested_tensors([o[key] for o in outputs]) for key in keys},
                          batch_size=rows)

    # ------------------------------------------------------------------ EMA and checkpoints
    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def ema_update_teacher(self, rate: float) -> dict:
        """θ_T ← (1 − rate)·θ_T + rate·θ on this rank's shards, in fp32 (srpo_verl.core.ema: the lerp runs on the
        actor's device, the teacher's host-resident shards staged through it a chunk at a time).

        Nothing is written when any actor value on any rank is non-finite. Returns this rank's
        ``{"applied": bool, "actor_finite": bool, "max_abs_delta": float}`` (max |Δθ_T|, 0.0 when not applied)."""
        self._require_ema("ema_update_teacher")
        adapter_ema = getattr(self, "adapter_ema", None)  # stand-ins in tests may lack the attribute
        if adapter_ema is not None:
            _synchronize_device()
            return adapter_ema.update(self.actor.engine.module, rate, agree=_all_ranks_agree).as_dict()
        teacher_params = dict(self._teacher_module().named_parameters())
        names, teacher, actor = [], [], []
        for name, actor_param in self.actor.engine.module.named_parameters():
            if name not in teacher_params:
                raise KeyError(f"actor parameter {name} has no teacher counterpart")
            names.append(name)
            teacher.append(_local(teacher_params[name].data))
            actor.append(_local(actor_param.data))
        # verl offloads the actor with non_blocking copies (fsdp_utils.offload_fsdp2_model_to_cpu): a host read of
        # its shards before the device drains would see unfinished copies
        device = get_torch_device()
        if device.is_available():
            device.synchronize()
        with torch.no_grad():
            return ema_update_(teacher, actor, rate, names=names, agree=_all_ranks_agree).as_dict()

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_teacher(self, local_path: str, global_step: int, max_ckpt_to_keep: int | None = None):
        """Model-only teacher checkpoint; ``max_ckpt_to_keep`` rotates the teacher/ folders like verl rotates actor/
        (this engine's checkpoint manager remembers the folders it wrote in this process)."""
        self._require_ema("save_teacher")
        if getattr(self, "adapter_ema", None) is not None:
            self.adapter_ema.save(local_path, *_rank_and_world(), max_to_keep=max_ckpt_to_keep)
            return
        self.teacher.save_checkpoint(local_path, None, global_step, max_ckpt_to_keep=max_ckpt_to_keep)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_teacher(self, local_path: str):
        self._require_ema("load_teacher")
        if getattr(self, "adapter_ema", None) is not None:
            _synchronize_device()
            self.adapter_ema.load(local_path, *_rank_and_world(), self.actor.engine.module)
            return
        self.teacher.load_checkpoint(local_path, None, False)

