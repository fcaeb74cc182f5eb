"""The success memory: a correct response from an earlier step serves as the demonstration for a group with none.

With binary rewards an all-failed group has no correct sibling, so SRPO sends it to GRPO with zero advantage: no
learning signal on exactly the hardest prompts. With the memory, the last correct response seen for the same prompt
in an earlier step becomes the demonstration of that group's failures, which are then self-distilled like any other
failure with a teacher (z^SDPO = (1 − c)·m with m extended by the memory; an extension beyond the paper).

Keys are the prompt's identity (the caller hashes the dataset row's prompt messages: verl's ``uid`` is new every step).
One response per prompt, the latest stored; at most ``max_entries`` prompts, the least recently stored evicted first.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Mapping, Sequence

import torch

from srpo_verl.core.methods import MEMORY_ROUTE_MODES
from srpo_verl.core.routing import RouteResult

STATE_VERSION = 1


def prompt_key(messages: Sequence[Mapping[str, Any]] | str) -> str:
    """A stable key for one prompt: sha256 of its chat messages as canonical JSON (or of the text itself).

    Stable across processes and resumes (no Python ``hash`` salt), equal for equal prompts whatever the dataset
    order."""
    text = messages if isinstance(messages, str) else json.dumps(
        [dict(m) for m in messages], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SuccessMemory:
    """prompt key → the last correct response text stored for it, at most ``max_entries`` keys."""

    def __init__(self, max_entries: int):
        if max_entries < 1:
            raise ValueError(f"max_entries={max_entries!r} must be ≥ 1")
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def lookup(self, key: str) -> str | None:
        return self._entries.get(key)

    def store(self, key: str, response: str) -> None:
        """Keep ``response`` as the prompt's demonstration (replacing an older one); evict the least recently
        stored prompt beyond the cap."""
        self._entries.pop(key, None)
        self._entries[key] = response
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "max_entries": self.max_entries,
                "entries": [[key, text] for key, text in self._entries.items()]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the entries in their stored order (oldest first); over this memory's cap, the oldest are
        dropped. Raises ValueError naming what is malformed."""
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            got = state.get("version") if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"success memory state version {got!r}, expected {STATE_VERSION}")
        entries = state.get("entries")
        if not isinstance(entries, list) or not all(
                isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e) for e in entries):
            raise ValueError("success memory state: 'entries' must be a list of [prompt_key, response] strings")
        self._entries.clear()
        for key, text in entries:
            self.store(key, text)


def add_memory_teachers(route: RouteResult, has_memory: torch.Tensor) -> RouteResult:
    """Route the failed samples without a teacher whose prompt has a memory entry to self-distillation.

    Args:
        route: the in-batch routing (:func:`srpo_verl.core.route_samples`).
        has_memory: bool[B], the sample's prompt has an entry in the success memory.

    Returns:
        ``route`` with ``memory_demo`` = bool[B] (failed, no in-batch teacher, memory entry; their ``demo_index``
        stays −1), ``teacher_available`` and ``distill`` extended by it. Modes outside MEMORY_ROUTE_MODES are refused.
    """
    if route.mode not in MEMORY_ROUTE_MODES:
        raise ValueError(f"route mode {route.mode!r} does not distil failed samples; the success memory needs one of "
                         f"{', '.join(MEMORY_ROUTE_MODES)}")
    has_memory = has_memory.to(device=route.correct.device, dtype=torch.bool)
    if has_memory.shape != route.correct.shape:
        raise ValueError(f"has_memory has shape {tuple(has_memory.shape)}, the routes {tuple(route.correct.shape)}")
    memory_demo = ~route.correct & ~route.teacher_available & has_memory
    return replace(route, teacher_available=route.teacher_available | memory_demo,
                   distill=route.distill | memory_demo, memory_demo=memory_demo)


def group_successes(correct: torch.Tensor, group_ids: Sequence) -> dict[Any, int]:
    """{group id: the position of its first correct sample} for the groups that have one (positions in the order
    given: pass rollout-index order to store the same response the group's siblings were shown)."""
    first: dict[Any, int] = {}
    for position, (ok, group) in enumerate(zip(correct.tolist(), group_ids, strict=True)):
        if ok and group not in first:
            first[group] = position
    return first
