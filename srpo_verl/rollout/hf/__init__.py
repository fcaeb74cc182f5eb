"""The `hf` rollout: verl's async rollout-server interface served by a plain HF causal LM (no vLLM / SGLang).

`actor_rollout_ref.rollout.name=hf` (with `rollout.mode=async`) selects it. It is registered in every process by the
plugin entry point, with or without the CPU backend: on a GPU node the server puts the model on the GPU of the
replica's first worker, on the CPU backend (`SRPO_VERL_CPU=1`) on the CPU. Meant for small models (tests, the CPU
quickstart, a GPU smoke test without an inference engine): one forward per generated token, no paged KV cache.

Modules: `server` (the Ray actor, replica and weight-sync adapter), `generation` (batched decoding), `sampling`
(vLLM-semantics sampling, pure torch), `agent_loop` (`session_single_turn_agent`: one request id per sample, so the
seeds do not depend on arrival order or the number of replicas).
"""

from __future__ import annotations

from srpo_verl.import_hooks import after_import

ROLLOUT_NAME = "hf"
REPLICA_MODULE = "verl.workers.rollout.replica"
ADAPTER_MODULE = "verl.workers.rollout.base"
ADAPTER_PATH = "srpo_verl.rollout.hf.server.HFServerAdapter"
AGENT_LOOP_MODULE = "verl.experimental.agent_loop.agent_loop"
AGENT_LOOP_NAME = "session_single_turn_agent"
AGENT_LOOP_PATH = "srpo_verl.rollout.hf.agent_loop.SessionSingleTurnAgentLoop"


def _add_replica(module) -> None:
    def load_hf_replica():
        from srpo_verl.rollout.hf.server import HFReplica

        return HFReplica

    module.RolloutReplicaRegistry.register(ROLLOUT_NAME, load_hf_replica)


def _add_adapter(module) -> None:
    module._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER_PATH


def _add_agent_loop(module) -> None:
    # the registry maps a name to a Hydra target, imported only when a worker instantiates the loop
    module._agent_loop_registry[AGENT_LOOP_NAME] = {"_target_": AGENT_LOOP_PATH}


def register() -> None:
    """Make `actor_rollout_ref.rollout.name=hf` resolve to our replica and server adapter, and register the session
    agent loop (each when verl imports the module that holds its registry)."""
    after_import(REPLICA_MODULE, _add_replica)
    after_import(ADAPTER_MODULE, _add_adapter)
    after_import(AGENT_LOOP_MODULE, _add_agent_loop)
