"""`session_single_turn_agent` (registered in srpo_verl/rollout/hf/__init__.py): verl's single-turn agent loop with one request id per sample of a group.

With `rollout.full_determinism=true` verl names a request `det-<priority>`, and the priority belongs to the prompt,
so the n samples of a group arrive at the server as n identical requests. A server that seeds from the request can
then only tell them apart by arrival order, which depends on scheduling and, with several replicas, on which replica
each one reaches: the same seed gave the same responses, but assigned to other samples of the group, and SRPO's
demonstration (the first correct sibling in rollout order) changed with it. This loop appends the sample's
`session_id` to the request id, so each sample's seed is fixed by (prompt, session) whatever the arrival order or
the number of replicas. Without full determinism the ids are random and nothing changes.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop


class _SessionRequestIds:
    """Proxy of the agent loop's server manager that makes each request id name the sample's session."""

    def __init__(self, inner, session_id: int) -> None:
        self._inner = inner
        self._suffix = f"-s{int(session_id)}"

    async def generate(self, *, request_id: str, **kwargs):
        return await self._inner.generate(request_id=f"{request_id}{self._suffix}", **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class SessionSingleTurnAgentLoop(SingleTurnAgentLoop):
    """SingleTurnAgentLoop whose requests carry the sample's session index (one instance serves one sample)."""

    async def run(self, sampling_params: dict[str, Any], **kwargs):
        session_id = kwargs.get("session_id")
        if session_id is not None and getattr(self.rollout_config, "full_determinism", False):
            self.server_manager = _SessionRequestIds(self.server_manager, session_id)
        return await super().run(sampling_params, **kwargs)
