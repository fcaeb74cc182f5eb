"""The `hf` rollout backend: verl's async server interface served by a plain HF causal LM (CPU or one GPU).

Three pieces, mirroring verl's vLLM backend (verl/workers/rollout/vllm_rollout):
  - `HFServer`: a Ray actor (named `hf_server_<replica>_0`) that owns a copy of the policy and answers
    `generate(prompt_ids, sampling_params, request_id)` with a `TokenOutput` (token ids + log-probs). Requests that
    arrive together are decoded as one batch (`generation.generate_batch`), each with its own seeded RNG.
    `update_weights` loads the trainer's weights; sleep/wake/kv-cache calls are no-ops (the model stays resident).
  - `HFReplica`: the `RolloutReplica` that verl's `LLMServerManager` builds; it launches one `HFServer` on the node
    of the replica's first worker and, on an accelerator platform, on that worker's device (as verl's vLLM replica
    does: Ray is told not to hide the devices of the zero-GPU server actor).
  - `HFServerAdapter`: the `BaseRollout` living in the trainer's hybrid worker; verl's naive checkpoint engine hands
    it the actor's weights (`ActorRolloutRefWorker.update_weights`), which it forwards to the server.

verl touch-points: `RolloutReplica`, `BaseRollout`, `TokenOutput` and the names `hf_server_<replica>_<node>`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Generator, Optional

import ray
import torch

from srpo_verl.rollout.hf.generation import Generation, generate_batch
from srpo_verl.rollout.hf.lora import adapter_pairs, base_names, lora_scaling, merged_weight
from srpo_verl.rollout.hf.sampling import SUPPORTED_LOGPROBS_MODES, SamplingSpec, request_key, request_seed
from verl.plugin.platform import get_platform
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.device import get_device_name, get_resource_name, get_torch_device, get_visible_devices_keyword
from verl.workers.config import HFModelConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

logger = logging.getLogger(__name__)

ROLLOUT_NAME = "hf"
# Time the server waits after the first queued request for its siblings (the agent loop sends a step's requests
# concurrently), so they decode as one batch.
BATCH_WINDOW_S = 0.02
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}
# Sampling keys verl's agent loop sends; anything else is refused rather than silently ignored.
_KNOWN_SAMPLING_KEYS = {"temperature", "top_p", "top_k", "repetition_penalty", "logprobs", "max_tokens",
                        "max_new_tokens", "seed", "ignore_eos"}


def server_actor_name(replica_rank: int, kind: str = "", suffix: str = "") -> str:
    """Ray actor name of an HF server (the vLLM backend's `<name>_server_<kind><replica>_<node>` scheme; one node
    per replica, so node 0). ``kind`` is "" for the policy's rollout, "reward_" or "teacher_" for verl's others."""
    return f"{ROLLOUT_NAME}_server_{kind}{replica_rank}_0{suffix}"


def server_device(device_name: str, accelerator_id: Optional[str], visible_devices: Optional[str],
                  accelerator_available: bool) -> torch.device:
    """Device of an HF server's model.

    Args:
        device_name: verl's platform device ("cpu" on the CPU backend, "cuda", "npu", ...).
        accelerator_id: Ray's id of the device of the replica's first worker ("3"), None without one.
        visible_devices: the server process's CUDA_VISIBLE_DEVICES-style variable (None or "" when unset); Ray's ids
            are entries of that list when it is set, physical indices otherwise.
        accelerator_available: whether the platform's torch device module sees a device in this process.
    Returns:
        `cpu` on the CPU platform or without an accelerator, else `<device_name>:<index of accelerator_id>`.
    """
    if device_name == "cpu" or accelerator_id is None or not accelerator_available:
        return torch.device("cpu")
    if visible_devices:
        visible = [entry.strip() for entry in visible_devices.split(",")]
        if accelerator_id not in visible:
            raise ValueError(f"hf rollout: device {accelerator_id} of the replica's worker is not among the visible "
                             f"devices {visible_devices!r} of its server")
        return torch.device(device_name, visible.index(accelerator_id))
    return torch.device(device_name, int(accelerator_id))


def resolve_max_tokens(sampling_params: dict, prompt_len: int, prompt_length: int, response_length: int,
                       max_model_len: Optional[int]) -> int:
    """Number of tokens a request may generate (vLLM server rules).

    `max_tokens` (or `max_new_tokens`) if given, else `response_length` capped by the prompt+response budget; then
    clamped to [1, max_model_len - prompt_len]. Raises if the prompt leaves no room at all.
    """
    context = max_model_len or (prompt_length + response_length)
    room = context - prompt_len
    if room < 1:
        raise ValueError(f"hf rollout: prompt of {prompt_len} tokens leaves no room to generate within {context}")
    if "max_tokens" in sampling_params:
        wanted = int(sampling_params["max_tokens"])
    elif "max_new_tokens" in sampling_params:
        wanted = int(sampling_params["max_new_tokens"])
    else:
        wanted = min(response_length, prompt_length + response_length - prompt_len)
    return max(1, min(wanted, room))


def sampling_spec_from_params(sampling_params: dict, max_tokens: int, seed: int) -> SamplingSpec:
    """Normalise verl's sampling dict into a `SamplingSpec`; refuses what the hf backend does not implement."""
    unknown = set(sampling_params) - _KNOWN_SAMPLING_KEYS
    if unknown:
        raise ValueError(f"hf rollout: unsupported sampling_params {sorted(unknown)} (known: {sorted(_KNOWN_SAMPLING_KEYS)})")
    penalty = float(sampling_params.get("repetition_penalty", 1.0) or 1.0)
    if penalty != 1.0:
        raise ValueError(f"hf rollout: repetition_penalty={penalty} is not implemented (only 1.0)")
    top_k = sampling_params.get("top_k", -1)
    top_p = sampling_params.get("top_p", 1.0)
    return SamplingSpec(
        temperature=float(sampling_params.get("temperature", 1.0)),
        top_k=-1 if top_k is None else int(top_k),
        top_p=1.0 if top_p is None else float(top_p),
        max_tokens=max_tokens,
        seed=int(sampling_params["seed"]) if sampling_params.get("seed") is not None else seed,
    )


def rollout_attention(name: str) -> str:
    """The attention the hf rollout decodes with: the actor's, except the CPU flash stand-in, which serves only
    packed training forwards (no mask, no KV cache: srpo_verl/cpu/attention.py); eager decodes for it."""
    from srpo_verl.cpu.attention import CPU_VARLEN_ATTENTION

    return "eager" if name == CPU_VARLEN_ATTENTION else name


def stop_token_ids_of(model: torch.nn.Module) -> set[int]:
    """EOS ids of an HF model: its generation_config's eos_token_id (int or list), else its config's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = getattr(model.config, "eos_token_id", None)
    if eos is None:
        raise ValueError(f"hf rollout: model {model.config.name_or_path!r} defines no eos_token_id; cannot stop")
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def load_state_checked(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy `state` into `model`; every model tensor must be covered (directly or through a tied twin).

    Returns the number of tensors loaded. Raises on unknown names and on model tensors nobody sent, since either
    would leave the rollout silently sampling from stale weights.
    """
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise KeyError(f"hf rollout: weight update has names the rollout model lacks: {result.unexpected_keys[:5]}")
    if result.missing_keys:
        own = model.state_dict()
        sent_ptrs = {own[name].data_ptr() for name in state if name in own}
        stale = [name for name in result.missing_keys if own[name].data_ptr() not in sent_ptrs]
        if stale:
            raise KeyError(f"hf rollout: weight update did not cover {stale[:5]} (and they are not tied to sent ones)")
    return len(state)


@dataclass
class _Request:
    prompt_ids: list[int]
    spec: SamplingSpec
    future: asyncio.Future = field(repr=False)


class HFServer:
    """Token-in/token-out generation server over an HF causal LM (made a Ray actor by `HFReplica`)."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int, accelerator_id: Optional[str] = None) -> None:
        self.config = omega_conf_to_dataclass(config)
        self.accelerator_id = accelerator_id
        self.model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.global_steps = 0
        self.model: Optional[torch.nn.Module] = None
        self.stop_ids: set[int] = set()
        self.pad_id = 0
        self._queue: list[_Request] = []
        # verl names requests by prompt ("det-<priority>", often det-0 for all), so the n rollouts of one prompt are
        # identical requests: the k-th identical (id, prompt) pair since the last weight version gets its own seed.
        self._occurrences: dict[tuple[str, tuple[int, ...]], int] = {}
        self._drainer: Optional[asyncio.Task] = None
        self._model_lock: Optional[asyncio.Lock] = None
        #: LoRA adapter sync: the targeted base weights, as last loaded (the adapters are merged from these)
        self._lora_base: dict[str, torch.Tensor] = {}
        if self.config.logprobs_mode not in SUPPORTED_LOGPROBS_MODES:
            raise ValueError(
                f"actor_rollout_ref.rollout.logprobs_mode={self.config.logprobs_mode!r} is not supported by the "
                f"hf rollout; use one of {SUPPORTED_LOGPROBS_MODES}"
            )

    # ---- lifecycle ------------------------------------------------------------------------------------------

    async def init_model(self) -> None:
        """Load the policy from `model_config.local_path` with the rollout dtype and the actor's attention kernel,
        onto `server_device(...)`."""
        from transformers import AutoModelForCausalLM

        dtype_name = str(self.config.dtype)
        if dtype_name not in _DTYPES:
            raise ValueError(f"actor_rollout_ref.rollout.dtype={dtype_name!r} unknown; use one of {sorted(_DTYPES)}")
        override = dict(getattr(self.model_config, "override_config", {}) or {})
        path = self.model_config.local_path
        self.model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=_DTYPES[dtype_name],
            attn_implementation=rollout_attention(override.get("attn_implementation", "eager")),
            trust_remote_code=bool(getattr(self.model_config, "trust_remote_code", False)),
        ).eval()
        device = server_device(get_device_name(), self.accelerator_id,
                               os.environ.get(get_visible_devices_keyword()), get_torch_device().is_available())
        self.model.to(device)
        self.stop_ids = set() if self.config.ignore_eos else stop_token_ids_of(self.model)
        pad = self.model.config.pad_token_id
        self.pad_id = int(pad) if pad is not None else min(self.stop_ids or {0})
        self._model_lock = asyncio.Lock()
        logger.info("hf rollout server %d: loaded %s (%s) on %s", self.replica_rank, path, dtype_name, device)

    # ---- generation -----------------------------------------------------------------------------------------

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Optional[list[Any]] = None,
        video_data: Optional[list[Any]] = None,
        audio_data: Optional[list[Any]] = None,
        mm_processor_kwargs: Optional[dict[str, Any]] = None,
        priority: int = 0,
        **unused: Any,
    ) -> TokenOutput:
        """Generate one response (vLLM server signature); multimodal inputs are refused."""
        if image_data or video_data or audio_data:
            raise NotImplementedError("hf rollout: multimodal inputs are not supported")
        if self.model is None:
            raise RuntimeError("hf rollout: generate() before init_model()")
        prompt_ids = [int(t) for t in prompt_ids]
        params = dict(sampling_params)
        want_logprobs = bool(params.pop("logprobs", False))
        if bool(params.pop("ignore_eos", self.config.ignore_eos)) != bool(self.config.ignore_eos):
            # stop tokens are set per server from actor_rollout_ref.rollout.ignore_eos, not per request
            raise NotImplementedError("hf rollout: a per-request ignore_eos that differs from "
                                      f"actor_rollout_ref.rollout.ignore_eos={self.config.ignore_eos} is not supported")
        max_tokens = resolve_max_tokens(
            params, len(prompt_ids), self.config.prompt_length, self.config.response_length, self.config.max_model_len
        )
        params.pop("max_tokens", None)
        params.pop("max_new_tokens", None)
        identity = (str(request_id), tuple(prompt_ids))
        occurrence = self._occurrences.get(identity, 0)
        self._occurrences[identity] = occurrence + 1
        seed = request_seed(self.config.seed, self.global_steps, request_key(str(request_id), prompt_ids, occurrence))
        spec = sampling_spec_from_params(params, max_tokens, seed)

        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(prompt_ids, spec, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        result: Generation = await future
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.log_probs if want_logprobs else None,
            stop_reason="completed",
            extra_fields={"global_steps": int(self.global_steps)},
        )

    async def _drain(self) -> None:
        """Decode queued requests in batches of at most `rollout.max_num_seqs` until the queue is empty."""
        while self._queue:
            await asyncio.sleep(BATCH_WINDOW_S)
            batch = self._queue[: self.config.max_num_seqs]
            del self._queue[: len(batch)]
            try:
                async with self._model_lock:
                    results = await asyncio.to_thread(
                        generate_batch,
                        self.model,
                        [r.prompt_ids for r in batch],
                        [r.spec for r in batch],
                        self.stop_ids,
                        self.pad_id,
                        self.config.logprobs_mode,
                    )
            except Exception as exc:  # every waiting request gets the error, none hangs
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            for request, result in zip(batch, results, strict=True):
                if not request.future.done():
                    request.future.set_result(result)

    # ---- weights --------------------------------------------------------------------------------------------

    async def update_weights(self, state: dict[str, torch.Tensor], global_steps: Optional[int] = None) -> int:
        """Load the trainer's weights (between batches, never during one); returns the number of tensors loaded."""
        async with self._model_lock:
            dtype = next(self.model.parameters()).dtype
            loaded = load_state_checked(self.model, {k: v.to(dtype) for k, v in state.items()})
            self._lora_base.clear()  # these are the base weights now
        if global_steps is not None:
            self._set_weight_version(global_steps)
        return loaded

    async def update_adapters(self, adapters: dict[str, torch.Tensor], peft_config: dict,
                              global_steps: Optional[int] = None) -> int:
        """Serve base + the LoRA adapters (lora.py: merged into a copy of each targeted base weight, recomputed from
        the base every sync); returns the number of weights merged."""
        scaling = lora_scaling(peft_config)
        pairs = adapter_pairs(adapters)
        async with self._model_lock:
            params = dict(self.model.named_parameters())
            unknown = sorted(set(pairs) - set(params))
            if unknown:
                raise KeyError(f"hf rollout: adapters target weights the rollout model lacks: {unknown[:5]}")
            with torch.no_grad():
                for target, (a, b) in pairs.items():
                    weight = params[target]
                    base = self._lora_base.setdefault(target, weight.detach().clone())
                    weight.copy_(merged_weight(base, a.to(base.device), b.to(base.device), scaling))
        if global_steps is not None:
            self._set_weight_version(global_steps)
        return len(pairs)

    async def set_global_steps(self, global_steps: int) -> None:
        self._set_weight_version(global_steps)

    def _set_weight_version(self, global_steps: int) -> None:
        self.global_steps = int(global_steps)
        self._occurrences.clear()

    async def get_state_dict(self) -> dict[str, torch.Tensor]:
        """The served weights (for tests that compare rollout and trainer weights)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    # ---- no-ops of the server interface (the model stays resident; nothing to free or pause) ---------------

    async def wake_up(self, tags: Optional[list[str]] = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        while self._queue or (self._drainer is not None and not self._drainer.done()):
            await asyncio.sleep(BATCH_WINDOW_S)

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict:
        return {"aborted_count": 0, "request_ids": []}

    async def abort_request(self, request_id: str, reset_prefix_cache: bool = True) -> dict:
        return {"aborted": False, "request_id": request_id}

    async def resume_generation(self) -> None:
        return None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


def _node_and_accelerator(worker) -> tuple[str, Optional[str]]:
    """(node id, first accelerator id or None) of the Ray actor this runs in (called through `__ray_call__`)."""
    context = ray.get_runtime_context()
    ids = context.get_accelerator_ids().get(get_resource_name(), [])
    return context.get_node_id(), (str(ids[0]) if ids else None)


class HFReplica(RolloutReplica):
    """One `hf` rollout replica = one `HFServer` actor on the node of the replica's first worker."""

    async def launch_servers(self) -> None:
        if self.nnodes != 1:
            raise ValueError(f"hf rollout: a replica must fit on one node (got nnodes={self.nnodes})")
        node_id, accelerator_id = ray.get_runtime_context().get_node_id(), None
        if self.workers:
            node_id, accelerator_id = await self.workers[0].__ray_call__.remote(_node_and_accelerator)
        # Ray hides every device from a zero-GPU actor unless told not to; the server shares its worker's device.
        noset = {var: "1" for var in get_platform().ray_noset_envvars()}
        kind = "reward_" if self.is_reward_model else "teacher_" if self.is_teacher_model else ""
        name = server_actor_name(self.replica_rank, kind, self.name_suffix)
        server = (
            ray.remote(HFServer)
            .options(
                name=name,
                num_cpus=0,
                max_concurrency=self.max_concurrency,
                **({"runtime_env": {"env_vars": noset}} if noset else {}),
                scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                    node_id=node_id, soft=False
                ),
            )
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank,
                    accelerator_id=accelerator_id)
        )
        await server.init_model.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"hf-replica-{self.replica_rank}"


class HFServerAdapter(BaseRollout):
    """The rollout object of a hybrid worker: forwards the actor's weights to its replica's `HFServer`."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self.is_leader = rank % rollout_world_size == 0
        self._server = None

    def _server_handle(self):
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        global_steps: Optional[int] = None,
        wire_format: str = "named_tensors",
        peft_config: Any = None,
        **kwargs: Any,
    ) -> None:
        """Gather the full tensors (every rank must iterate: DTensor.full_tensor is a collective) and send them."""
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout: wire_format={wire_format!r} (only 'named_tensors')")
        adapters_only = peft_config is not None and kwargs.get("base_sync_done", True)
        state: dict[str, torch.Tensor] = {}
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            if self.is_leader:
                state[name] = tensor.detach().to("cpu").clone()
        if not self.is_leader:
            return
        if adapters_only:  # verl's LoRA sync: adapters only, the server merges them (lora.py)
            await self._server_handle().update_adapters.remote(state, dict(peft_config), global_steps)
        elif peft_config is not None:  # the base weights, once, before the first adapter sync
            await self._server_handle().update_weights.remote(base_names(state), global_steps)
        else:
            await self._server_handle().update_weights.remote(state, global_steps)
