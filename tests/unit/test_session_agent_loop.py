"""The session agent loop: each sample of a group gets its own request id under full determinism."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import verl  # noqa: F401  (runs the plugin entry point, which registers the loop)
from verl.experimental.agent_loop import agent_loop as verl_agent_loop
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop

from srpo_verl.rollout.hf import AGENT_LOOP_NAME, AGENT_LOOP_PATH
from srpo_verl.rollout.hf.agent_loop import SessionSingleTurnAgentLoop, _SessionRequestIds


class RecordingServer:
    def __init__(self):
        self.request_ids = []

    async def generate(self, *, request_id, **kwargs):
        self.request_ids.append(request_id)
        return kwargs["prompt_ids"]

    def other_method(self):
        return "passed through"


def test_the_loop_is_registered_by_name_with_its_import_path():
    assert verl_agent_loop._agent_loop_registry[AGENT_LOOP_NAME] == {"_target_": AGENT_LOOP_PATH}
    module, name = AGENT_LOOP_PATH.rsplit(".", 1)
    assert getattr(__import__(module, fromlist=[name]), name) is SessionSingleTurnAgentLoop


def test_request_ids_name_the_session_and_everything_else_passes_through():
    server = RecordingServer()
    ids = [_SessionRequestIds(server, session) for session in range(3)]
    for proxy in ids:
        assert asyncio.run(proxy.generate(request_id="det-7", prompt_ids=[1, 2])) == [1, 2]
    assert server.request_ids == ["det-7-s0", "det-7-s1", "det-7-s2"]
    assert ids[0].other_method() == "passed through"


def _run_loop(monkeypatch, full_determinism: bool, session_id):
    """Run SessionSingleTurnAgentLoop.run with SingleTurnAgentLoop.run replaced by a probe of the server manager."""
    server = RecordingServer()
    loop = SessionSingleTurnAgentLoop.__new__(SessionSingleTurnAgentLoop)
    loop.rollout_config = SimpleNamespace(full_determinism=full_determinism)
    loop.server_manager = server

    async def probe(self, sampling_params, **kwargs):
        return await self.server_manager.generate(request_id="det-3", prompt_ids=[5])

    monkeypatch.setattr(SingleTurnAgentLoop, "run", probe)
    kwargs = {} if session_id is None else {"session_id": session_id}
    asyncio.run(loop.run({}, **kwargs))
    return server.request_ids


def test_run_suffixes_the_session_only_under_full_determinism(monkeypatch):
    assert _run_loop(monkeypatch, True, 2) == ["det-3-s2"]
    assert _run_loop(monkeypatch, False, 2) == ["det-3"]
    assert _run_loop(monkeypatch, True, None) == ["det-3"]
