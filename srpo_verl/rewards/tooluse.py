"""ToolAlpaca tool-use verifier (spec §5.4; SDPO `feedback/tooluse.py` semantics).

The completion follows the prompt's ReAct format, any number of times:

    Thought: ...
    Action: <tool name>
    Action Input: <JSON object>

Reward 1 iff
  (a) the multiset of `Action:` names equals the gold multiset, and
  (b) all `Action Input:` objects merged in order (`dict.update`, later keys win) equal the gold objects merged the
      same way.
The merge is SDPO's rule and is kept for the paper's numbers: when two gold calls set the same key differently
(e.g. three `searchAxolotlImages` calls with size small/medium/large) only the last value is checked, so the order
of such calls matters and the earlier values are not checked at all.

Gold (`ground_truth`) is the split's `answer` string: a JSON list of {"Action": name, "Action_Input": JSON-string}.

Parsing rules (a completion that breaks one gets format_ok False, score 0, and the reason):
- `Action:` / `Action Input:` markers count only at the start of a line (leading spaces allowed);
- every Action needs exactly one Action Input before the next Action; an Action Input needs a preceding Action;
- an Action Input is the first JSON value after the colon (trailing text on the line is ignored) and must be an
  object. Code fences are not stripped.
JSON values are compared type-aware: true is not 1, but 1 equals 1.0.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from typing import NamedTuple

from srpo_verl.rewards.result import clip_for_log, make_result

_MARKER = re.compile(r"^[ \t]*(Action Input|Action)[ \t]*:", re.MULTILINE)
_DECODER = json.JSONDecoder()


class ToolCall(NamedTuple):
    """One call: the tool `name` and its decoded `arguments` object."""

    name: str
    arguments: dict


class ParsedCalls(NamedTuple):
    """`calls` in order; `ok` False with a `reason` when the completion breaks the format."""

    calls: tuple
    ok: bool
    reason: str


def _canonical(value):
    """A hashable, order-free form of a JSON value; bools stay distinct from numbers, ints equal floats."""
    if isinstance(value, dict):
        return ("obj", frozenset((key, _canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("arr", tuple(_canonical(item) for item in value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("num", value)  # 1 == 1.0 and hash(1) == hash(1.0); no float() overflow on huge ints
    return ("str" if isinstance(value, str) else "null", value)


def merged_arguments(calls) -> dict:
    """All call arguments merged in order (later keys overwrite earlier ones), the SDPO rule."""
    merged = {}
    for call in calls:
        merged.update(call.arguments)
    return merged


def _decode_object(text: str, start: int):
    """(object, None) for the JSON object starting at text[start:] (after whitespace), or (None, reason)."""
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except RecursionError:
        return None, "nested too deeply"
    except ValueError:
        return None, "is not valid JSON"
    if not isinstance(value, dict):
        return None, f"is a JSON {type(value).__name__}, not an object"
    return value, None


def parse_tool_calls(text: str) -> ParsedCalls:
    """Parse the Action / Action Input blocks of a completion. Never raises; O(len(text))."""
    if not isinstance(text, str):
        return ParsedCalls((), False, f"completion is {type(text).__name__}, not str")
    calls = []
    pending_name = None
    for marker in _MARKER.finditer(text):
        if marker.group(1) == "Action":
            if pending_name is not None:
                return ParsedCalls(tuple(calls), False, f"Action {clip_for_log(pending_name, 40)!r} has no Action Input")
            line_end = text.find("\n", marker.end())
            pending_name = text[marker.end(): len(text) if line_end < 0 else line_end].strip()
            if not pending_name:
                return ParsedCalls(tuple(calls), False, "empty Action name")
            continue
        if pending_name is None:
            return ParsedCalls(tuple(calls), False, "Action Input without a preceding Action")
        arguments, problem = _decode_object(text, marker.end())
        if problem:
            return ParsedCalls(tuple(calls), False, f"Action Input of {clip_for_log(pending_name, 40)!r} {problem}")
        calls.append(ToolCall(pending_name, arguments))
        pending_name = None
    if pending_name is not None:
        return ParsedCalls(tuple(calls), False, f"Action {clip_for_log(pending_name, 40)!r} has no Action Input")
    if not calls:
        return ParsedCalls((), False, "no Action / Action Input block" if text.strip() else "empty completion")
    return ParsedCalls(tuple(calls), True, "")


class GoldCalls(NamedTuple):
    """The gold calls of one row, pre-digested for comparison."""

    calls: tuple
    name_counts: Counter
    merged_canonical: tuple


@lru_cache(maxsize=8192)
def parse_gold(ground_truth: str) -> GoldCalls:
    """Decode a gold `answer` string. Raises ValueError (a data bug, not model output) when it is malformed."""
    if not isinstance(ground_truth, str):
        raise ValueError(f"tooluse ground_truth must be the split's JSON string, got {type(ground_truth).__name__}")
    try:
        entries = json.loads(ground_truth)
    except ValueError as err:
        raise ValueError(f"tooluse ground_truth is not JSON ({err}): {clip_for_log(ground_truth, 120)!r}") from None
    if not isinstance(entries, list):
        raise ValueError(f"tooluse ground_truth must be a JSON list of calls: {clip_for_log(ground_truth, 120)!r}")
    calls = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"Action", "Action_Input"}:
            raise ValueError(f"tooluse ground_truth call {position} must have exactly the keys Action, Action_Input: "
                             f"{clip_for_log(repr(entry), 120)}")
        try:
            arguments = json.loads(entry["Action_Input"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"tooluse ground_truth call {position} Action_Input is not a JSON string ({err})") from None
        if not isinstance(arguments, dict):
            raise ValueError(f"tooluse ground_truth call {position} Action_Input is not a JSON object")
        calls.append(ToolCall(str(entry["Action"]), arguments))
    calls = tuple(calls)
    return GoldCalls(calls, Counter(call.name for call in calls), _canonical(merged_arguments(calls)))


def format_calls(calls) -> str:
    """Calls in the prompt's format (`Action: ...\\nAction Input: {...}`), one after the other."""
    return "\n".join(f"Action: {call.name}\nAction Input: {json.dumps(call.arguments, ensure_ascii=False)}"
                     for call in calls)


def tooluse_feedback(reason: str, gold: GoldCalls) -> str:
    """Teacher-facing feedback for a failed attempt. It REVEALS the gold calls (hence the second opt-in flag)."""
    return f"Your tool calls were not accepted ({reason}). The expected calls were:\n{format_calls(gold.calls)}"


def _pred_summary(calls) -> str:
    return json.dumps([[call.name, call.arguments] for call in calls], ensure_ascii=False, sort_keys=True)


def score_tooluse(solution_str: str, ground_truth: str, with_feedback: bool = False) -> dict:
    """Score one completion against the gold calls. Never raises on any `solution_str`."""
    gold = parse_gold(ground_truth)
    parsed = parse_tool_calls(solution_str)
    if not parsed.ok:
        reason = parsed.reason
        correct = False
    elif Counter(call.name for call in parsed.calls) != gold.name_counts:
        reason, correct = "tool names differ from the expected ones", False
    else:
        try:
            same_arguments = _canonical(merged_arguments(parsed.calls)) == gold.merged_canonical
        except RecursionError:
            same_arguments = False
        reason, correct = ("correct", True) if same_arguments else ("tool arguments differ from the expected ones",
                                                                   False)
    try:
        pred = _pred_summary(parsed.calls)
    except (RecursionError, ValueError):
        pred = f"<{len(parsed.calls)} calls, not printable>"
    feedback = tooluse_feedback(reason, gold) if with_feedback and not correct else ""
    return make_result(correct, pred, parsed.ok, reason, feedback)
