"""ToolAlpaca tool-use verifier (SRPO_SPEC §5.4; SDPO `feedback/tooluse.py` semantics).

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

Gold (`ground_truth`) is the split's `answer` string: a non-empty JSON list of {"Action": name, "Action_Input":
JSON-string}, each name a non-empty one-line string without surrounding spaces (a name the parser can produce).

Parsing rules (a completion that breaks one gets format_ok False, score 0, and the reason):
- `Action:` / `Action Input:` markers count only at the start of a line (leading spaces allowed);
- every Action needs exactly one Action Input before the next Action; an Action Input needs a preceding Action;
- an Action Input is the first JSON value after the colon (trailing text on the line is ignored) and must be an
  object. Code fences are not stripped.
JSON values are compared type-aware: true is not 1, but 1 equals 1.0.

Bounds (one verification stays in the low milliseconds whatever the model writes; the gold answers are far inside
them: the longest gold `answer` of the splits is 890 characters with 5 calls). Past a bound the completion scores 0
with format_ok False and a reason naming the bound:
- MAX_COMPLETION_CHARS characters of completion (`result.MAX_COMPLETION_CHARS`);
- MAX_ACTION_MENTIONS occurrences of the word "Action" (markers or not) are examined;
- MAX_ACTION_LINE_CHARS characters after an `Action:` marker, up to the end of its line;
- MAX_ARGUMENT_CHARS characters of Action Input text, all calls together (leading whitespace included): JSON is
  decoded only inside that budget;
- nesting: Python's JSON decoder refuses depth past the interpreter's recursion limit ("nested too deeply").
The comparison walks the gold object and stops at the first difference, so its work is bounded by the gold's size.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from typing import NamedTuple

from srpo_verl.rewards.result import MAX_COMPLETION_CHARS, clip_for_log, make_result

MAX_ACTION_MENTIONS = 256
MAX_ACTION_LINE_CHARS = 1 << 10
MAX_ARGUMENT_CHARS = 1 << 14
# An Action Input is first decoded from this many characters (every gold input fits), then from the rest of the
# budget: a long run of calls copies small windows, not the whole budget each time.
_FIRST_WINDOW_CHARS = 1 << 10
_MARKER_AT = re.compile(r"(Action Input|Action)[ \t]*:")
# Regexes, not str.strip(chars): on a megabyte of blanks strip(" \t") is ~50x slower than a regex run.
_INDENT = re.compile(r"[ \t]*")
_JSON_SPACE = re.compile(r"[ \t\r\n]*")
_DECODER = json.JSONDecoder()


class ToolCall(NamedTuple):
    """One call: the tool `name` and its decoded `arguments` object."""

    name: str
    arguments: dict


class ParsedCalls(NamedTuple):
    """`calls` in order; `ok` False with a `reason` when the completion breaks the format or a bound."""

    calls: tuple
    ok: bool
    reason: str


def same_json(gold, pred) -> bool:
    """`gold == pred` as JSON values: bools are not numbers, 1 equals 1.0, key order is free.

    Walks `gold` and stops at the first difference, so the work is bounded by the size of `gold` whatever `pred` is.
    """
    if isinstance(gold, bool) or isinstance(pred, bool):
        return isinstance(gold, bool) and isinstance(pred, bool) and gold == pred
    if isinstance(gold, (int, float)):
        return isinstance(pred, (int, float)) and gold == pred  # no float() of huge ints: exact int/float compare
    if isinstance(gold, str):
        return isinstance(pred, str) and gold == pred
    if gold is None:
        return pred is None
    if isinstance(gold, list):
        return (isinstance(pred, list) and len(gold) == len(pred)
                and all(same_json(g, p) for g, p in zip(gold, pred)))
    if isinstance(gold, dict):
        return (isinstance(pred, dict) and len(gold) == len(pred)
                and all(key in pred and same_json(value, pred[key]) for key, value in gold.items()))
    return False


def merged_arguments(calls) -> dict:
    """All call arguments merged in order (later keys overwrite earlier ones), the SDPO rule."""
    merged = {}
    for call in calls:
        merged.update(call.arguments)
    return merged


def _decode_in_window(text: str, start: int, size: int):
    """(value, characters used) of the first JSON value in text[start:start+size] (leading whitespace skipped).
    Raises ValueError / RecursionError as the decoder does."""
    value_start = _JSON_SPACE.match(text, start, start + size).end()
    value, end = _DECODER.raw_decode(text[value_start: start + size])
    return value, value_start - start + end


def _decode_object(text: str, start: int, budget: int):
    """(object, characters used, None) for the JSON object after text[start:] (leading whitespace skipped), reading
    at most `budget` characters; or (None, 0, reason)."""
    first = min(budget, _FIRST_WINDOW_CHARS)
    try:
        try:
            value, end = _decode_in_window(text, start, first)
        except ValueError:
            if first == budget or start + first >= len(text):
                raise
            value, end = _decode_in_window(text, start, budget)
    except RecursionError:
        return None, 0, "nested too deeply"
    except ValueError:
        if start + budget < len(text):
            return None, 0, (f"is not valid JSON within the {MAX_ARGUMENT_CHARS:,}-character bound on the Action "
                             "Inputs of a completion")
        return None, 0, "is not valid JSON"
    if not isinstance(value, dict):
        return None, 0, f"is a JSON {type(value).__name__}, not an object"
    return value, end, None


def _line_start_markers(text: str):
    """(kind, end) of each `Action:` / `Action Input:` marker at a line start, in order; ("bound", 0) after
    MAX_ACTION_MENTIONS occurrences of "Action". Total work O(len(text)) in C plus O(mentions) in Python."""
    mentions, position, checked_from = 0, 0, 0
    while True:
        found = text.find("Action", position)
        if found < 0:
            return
        mentions += 1
        if mentions > MAX_ACTION_MENTIONS:
            yield "bound", 0
            return
        marker = _MARKER_AT.match(text, found)
        position = found + len("Action")
        if marker is None:
            continue
        # Only the text since the previous mention is searched for the line start: a mention between them on the
        # same line means this one is not at a line start (total O(len(text)), never quadratic).
        line_start = text.rfind("\n", checked_from, found) + 1
        at_line_start = (line_start > 0 or checked_from == 0) and _INDENT.fullmatch(text, line_start, found)
        checked_from = found
        if at_line_start:
            position = marker.end()
            yield marker.group(1), marker.end()


def parse_tool_calls(text: str) -> ParsedCalls:
    """Parse the Action / Action Input blocks of a completion within the module's bounds. Never raises."""
    if not isinstance(text, str):
        return ParsedCalls((), False, f"completion is {type(text).__name__}, not str")
    if len(text) > MAX_COMPLETION_CHARS:
        return ParsedCalls((), False, f"completion is longer than {MAX_COMPLETION_CHARS:,} characters")
    calls = []
    pending_name = None
    budget = MAX_ARGUMENT_CHARS
    for kind, end in _line_start_markers(text):
        if kind == "bound":
            return ParsedCalls(tuple(calls), False, f"more than {MAX_ACTION_MENTIONS:,} mentions of 'Action'")
        if kind == "Action":
            if pending_name is not None:
                return ParsedCalls(tuple(calls), False, f"Action {clip_for_log(pending_name, 40)!r} has no Action Input")
            line_end = text.find("\n", end)
            line_end = len(text) if line_end < 0 else line_end
            if line_end - end > MAX_ACTION_LINE_CHARS:
                return ParsedCalls(tuple(calls), False, f"Action line longer than {MAX_ACTION_LINE_CHARS:,} characters")
            pending_name = text[end:line_end].strip()
            if not pending_name:
                return ParsedCalls(tuple(calls), False, "empty Action name")
            continue
        if pending_name is None:
            return ParsedCalls(tuple(calls), False, "Action Input without a preceding Action")
        arguments, used, problem = _decode_object(text, end, budget)
        if problem:
            return ParsedCalls(tuple(calls), False, f"Action Input of {clip_for_log(pending_name, 40)!r} {problem}")
        budget -= used
        calls.append(ToolCall(pending_name, arguments))
        pending_name = None
    if pending_name is not None:
        return ParsedCalls(tuple(calls), False, f"Action {clip_for_log(pending_name, 40)!r} has no Action Input")
    if not calls:
        blank = not text or text.isspace()  # = not text.strip(), without copying a megabyte
        return ParsedCalls((), False, "empty completion" if blank else "no Action / Action Input block")
    return ParsedCalls(tuple(calls), True, "")


class GoldCalls(NamedTuple):
    """The gold calls of one row, pre-digested for comparison."""

    calls: tuple
    name_counts: Counter
    merged: dict


def _check_gold_name(position: int, name) -> str:
    """The gold tool name of call `position`, checked to be one a parsed completion can produce."""
    if not isinstance(name, str):
        raise ValueError(f"tooluse ground_truth call {position} Action must be a string, got {type(name).__name__}")
    if not name.strip():
        raise ValueError(f"tooluse ground_truth call {position} Action is empty")
    if name != name.strip() or "\n" in name or "\r" in name:
        raise ValueError(f"tooluse ground_truth call {position} Action {clip_for_log(name, 60)!r} has surrounding "
                         "spaces or a line break: no completion's Action line can match it")
    return name


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
    if not entries:
        raise ValueError("tooluse ground_truth is an empty list of calls: no completion can score on it")
    calls = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"Action", "Action_Input"}:
            raise ValueError(f"tooluse ground_truth call {position} must have exactly the keys Action, Action_Input: "
                             f"{clip_for_log(repr(entry), 120)}")
        name = _check_gold_name(position, entry["Action"])
        try:
            arguments = json.loads(entry["Action_Input"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"tooluse ground_truth call {position} Action_Input is not a JSON string ({err})") from None
        if not isinstance(arguments, dict):
            raise ValueError(f"tooluse ground_truth call {position} Action_Input is not a JSON object")
        calls.append(ToolCall(name, arguments))
    calls = tuple(calls)
    return GoldCalls(calls, Counter(call.name for call in calls), merged_arguments(calls))


def format_calls(calls) -> str:
    """Calls in the prompt's format (`Action: ...\\nAction Input: {...}`), one after the other."""
    return "\n".join(f"Action: {call.name}\nAction Input: {json.dumps(call.arguments, ensure_ascii=False)}"
                     for call in calls)


def tooluse_feedback(reason: str, gold: GoldCalls) -> str:
    """Teacher-facing feedback for a failed attempt. It REVEALS the gold calls (hence the second opt-in flag)."""
    return f"Your tool calls were not accepted ({reason}). The expected calls were:\n{format_calls(gold.calls)}"


def _pred_summary(calls) -> str:
    """The parsed calls as sorted-key JSON (names clipped: a megabyte name line is not copied into the logs)."""
    return json.dumps([[clip_for_log(call.name, 64), call.arguments] for call in calls], ensure_ascii=False,
                      sort_keys=True)


def score_tooluse(solution_str: str, ground_truth: str, with_feedback: bool = False) -> dict:
    """Score one completion against the gold calls. Never raises on any `solution_str`."""
    gold = parse_gold(ground_truth)
    parsed = parse_tool_calls(solution_str)
    if not parsed.ok:
        reason = parsed.reason
        correct = False
    elif Counter(call.name for call in parsed.calls) != gold.name_counts:
        reason, correct = "tool names differ from the expected ones", False
    elif same_json(gold.merged, merged_arguments(parsed.calls)):
        reason, correct = "correct", True
    else:
        reason, correct = "tool arguments differ from the expected ones", False
    try:
        pred = _pred_summary(parsed.calls)
    except (RecursionError, ValueError):
        pred = f"<{len(parsed.calls)} calls, not printable>"
    feedback = tooluse_feedback(reason, gold) if with_feedback and not correct else ""
    return make_result(correct, pred, parsed.ok, reason, feedback)
