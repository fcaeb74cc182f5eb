"""MCQ and tool-use verifiers on the SDPO splits (the repository's sample, and the full splits when SRPO_VERL_SPLITS
names them: tests/conftest.py) and on adversarial outputs (SRPO_SPEC §5.4)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from srpo_verl.jsonl import load_jsonl
from srpo_verl.rewards import RESULT_KEYS, compute_score
from srpo_verl.rewards.result import MAX_COMPLETION_CHARS
from srpo_verl.rewards.tooluse import (MAX_ACTION_MENTIONS, MAX_ARGUMENT_CHARS, format_calls, parse_gold,
                                       parse_tool_calls, same_json)

REPO = Path(__file__).resolve().parents[2]
SCIKNOWEVAL_TASKS = ("chemistry", "physics", "biology", "material")


def _mcq_completion(letter):
    """How the system prompt asks the model to answer."""
    return f"<reasoning>\nThe options differ; working it out gives {letter}.\n</reasoning>\n<answer>\n{letter}\n</answer>"


# ---- MCQ --------------------------------------------------------------------------------------------------------

def test_every_sciknoweval_gold_answer_written_as_asked_scores_one(splits):
    scored = 0
    for task in SCIKNOWEVAL_TASKS:
        for split in ("train", "test"):
            for row in load_jsonl(splits.root / "sciknoweval" / task / f"{split}.json"):
                result = compute_score("sciknoweval", _mcq_completion(row["answer"]), row["answer"])
                assert (result["score"], result["format_ok"], result["pred"]) == (1.0, True, row["answer"]), row["idx"]
                wrong = "B" if row["answer"] == "A" else "A"
                assert compute_score("sciknoweval", _mcq_completion(wrong), row["answer"])["score"] == 0.0
                scored += 1
    assert scored == sum(sum(splits.counts[task]) for task in SCIKNOWEVAL_TASKS)
    if splits.kind == "full":
        assert scored == 1890 + 210 + 720 + 80 + 450 + 50 + 841 + 94


MEGABYTE = 1 << 20
MCQ_ADVERSARIAL = [
    # (name, completion, format_ok, reason) — gold is "B", every row scores 0
    ("empty", "", False, "empty completion"),
    ("whitespace only", " \n\t ", False, "empty completion"),
    ("no tags", "The answer is B.", False, "no <answer> block"),
    ("unclosed", "<answer>\nB", False, "last <answer> tag is never closed"),
    ("nested", "<answer><answer>B</answer></answer>", False, "nested or stray </answer> tag after the last block"),
    ("stray closer", "<answer>B</answer> done</answer>", False, "nested or stray </answer> tag after the last block"),
    ("repeated, last wrong", "<answer>B</answer> on reflection <answer>C</answer>", True, "wrong option"),
    ("closed then reopened", "<answer>B</answer> <answer>", False, "last <answer> tag is never closed"),
    ("upper-case tags", "<ANSWER>B</ANSWER>", False, "no <answer> block"),
    ("lower-case letter", "<answer>b</answer>", True, "wrong option"),
    ("letter with period", "<answer>B.</answer>", True, "wrong option"),
    ("letter restated", "<answer>B: 2.0 N</answer>", True, "wrong option"),
    ("two letters", "<answer>B, C</answer>", True, "wrong option"),
    ("fullwidth letter", "<answer>\uff22</answer>", True, "wrong option"),
    ("zero-width space", "<answer>\u200bB</answer>", True, "wrong option"),
    ("lone surrogate", "<answer>\ud800</answer>", True, "wrong option"),
    ("empty block", "<answer>\n</answer>", True, "empty <answer> block"),
    ("megabyte, no tags", "B" * MEGABYTE, False, "no <answer> block"),
    ("megabyte of open tags", "<answer>" * (MEGABYTE // 8), False, "last <answer> tag is never closed"),
    ("megabyte answer", "<answer>" + "B" * MEGABYTE + "</answer>", True, "wrong option"),
    ("megabyte reasoning, wrong", "x" * MEGABYTE + "<answer>A</answer>", True, "wrong option"),
    ("over the completion bound", "<answer>B</answer>" + " " * MAX_COMPLETION_CHARS, False,
     "completion is longer than 2,097,152 characters"),
]


@pytest.mark.parametrize("name, completion, format_ok, reason", MCQ_ADVERSARIAL, ids=[c[0] for c in MCQ_ADVERSARIAL])
def test_mcq_adversarial_outputs_score_zero_with_the_right_flags(name, completion, format_ok, reason):
    result = compute_score("sciknoweval", completion, "B")
    assert tuple(result) == RESULT_KEYS
    assert (result["score"], result["acc"], result["format_ok"], result["reason"]) == (0.0, 0.0, format_ok, reason)
    assert len(result["pred"]) <= 300  # megabyte outputs are clipped before they reach the logs
    result["pred"].encode("utf-8")  # a lone surrogate must not reach a UTF-8 log writer
    json.dumps(result)


def test_mcq_non_string_completion_does_not_raise():
    result = compute_score("sciknoweval", None, "B")
    assert (result["score"], result["format_ok"], result["reason"]) == (0.0, False, "completion is NoneType, not str")


def test_mcq_megabyte_reasoning_with_right_answer_still_scores_one():
    assert compute_score("sciknoweval", "x" * MEGABYTE + "<answer>\nB\n</answer>", "B")["score"] == 1.0


def test_mcq_feedback_is_opt_in_and_never_names_the_gold_letter():
    assert compute_score("sciknoweval", "<answer>A</answer>", "B")["feedback"] == ""
    wrong = compute_score("sciknoweval", "<answer>A</answer>", "B", env_feedback=True)["feedback"]
    assert wrong == "Your final answer 'A' is not the correct option."
    unparsed = compute_score("sciknoweval", "no tags", "B", env_feedback=True)["feedback"]
    assert unparsed.startswith("Your response could not be graded: no <answer> block.") and "'B'" not in unparsed


# ---- tool use -----------------------------------------------------------------------------------------------------

def _tool_rows(root):
    return load_jsonl(root / "tooluse" / "test.json")


def test_every_tooluse_test_gold_answer_written_in_the_prompt_format_scores_one(splits):
    rows = _tool_rows(splits.root)
    assert len(rows) == splits.counts["tooluse"][1]
    for row in rows:
        gold = parse_gold(row["answer"])
        completion = "Thought: I should call the tools the question needs.\n" + format_calls(gold.calls)
        result = compute_score("tooluse", completion, row["answer"])
        assert (result["score"], result["format_ok"], result["reason"]) == (1.0, True, "correct"), row["idx"]


def test_gold_actions_a_prompt_following_model_cannot_reach_are_named(splits):
    """The Action/Action Input format expresses all 68 gold answers (the test above), but three rows name tools the
    prompt does not document, although it asks for "one of the tool names":
    - idx 4079: "[Optional]updateUserProfile" (the documented tool is updateUserProfile);
    - idx 4106, 4107: "getDetails", ToolAlpaca's ask-the-user pseudo-action, followed by calls whose ids
      (sourceId 12345, dashboardId 67890, ...) the question never gives.
    A model that follows the prompt cannot score on them; every other gold action is a documented tool. The sample
    holds those three rows."""
    undocumented = []
    for row in _tool_rows(splits.root):
        for call in parse_gold(row["answer"]).calls:
            if f"\n{call.name}:" not in row["prompt"]:
                undocumented.append((row["idx"], call.name))
    assert undocumented == [(4079, "[Optional]updateUserProfile"), (4106, "getDetails"), (4107, "getDetails")]


def test_merged_inputs_make_repeated_calls_order_sensitive(sample_splits):
    """Row 4052 calls searchAxolotlImages with size small, medium, large; the merge keeps only "large", so the
    same calls in another order fail and a completion that repeats the last call three times passes."""
    row = next(r for r in _tool_rows(sample_splits) if r["idx"] == 4052)
    calls = parse_gold(row["answer"]).calls
    assert [c.arguments["size"] for c in calls] == ["small", "medium", "large"]
    assert compute_score("tooluse", format_calls(calls[::-1]), row["answer"])["score"] == 0.0
    assert compute_score("tooluse", format_calls([calls[-1]] * 3), row["answer"])["score"] == 1.0


TWO_CALL_GOLD = json.dumps([
    {"Action": "getExchangeRates", "Action_Input": json.dumps({"base": "USD", "symbols": "CAD"})},
    {"Action": "setPriceAlert", "Action_Input": json.dumps({"currency_pair": "USD/CAD", "price": 1.2, "page": 1})},
])
RIGHT_1 = 'Action: getExchangeRates\nAction Input: {"base": "USD", "symbols": "CAD"}\n'
RIGHT_2 = 'Action: setPriceAlert\nAction Input: {"currency_pair": "USD/CAD", "price": 1.2, "page": 1}\n'
# 1 MiB of objects in lists, 80 levels deep per unit, and an 8 KiB object of 550 keys (half the argument budget)
NESTED_MEGABYTE = '{"base": "USD", "x": [' + ", ".join(['{"a": [' * 40 + "1" + "]}" * 40] * (MEGABYTE // 322)) + "]}"
WIDE_8K = "{" + ", ".join(f'"k{i:05d}": {i}' for i in range(550)) + "}"
TOOL_ADVERSARIAL = [
    # (name, completion, format_ok, reason) — every row scores 0
    ("empty", "", False, "empty completion"),
    ("no actions", "Thought: I would call getExchangeRates.", False, "no Action / Action Input block"),
    ("action without input", "Action: getExchangeRates\n", False, "Action 'getExchangeRates' has no Action Input"),
    ("input without action", 'Action Input: {"base": "USD"}', False, "Action Input without a preceding Action"),
    ("second action lacks input", RIGHT_1 + "Action: setPriceAlert\nThought: done", False,
     "Action 'setPriceAlert' has no Action Input"),
    ("empty action name", "Action:   \nAction Input: {}", False, "empty Action name"),
    ("malformed JSON", 'Action: getExchangeRates\nAction Input: {"base": "USD",', False,
     "Action Input of 'getExchangeRates' is not valid JSON"),
    ("single quotes", "Action: getExchangeRates\nAction Input: {'base': 'USD'}", False,
     "Action Input of 'getExchangeRates' is not valid JSON"),
    ("JSON array", "Action: getExchangeRates\nAction Input: [1, 2]", False,
     "Action Input of 'getExchangeRates' is a JSON list, not an object"),
    ("code fence", 'Action: getExchangeRates\nAction Input: ```json\n{"base": "USD"}\n```', False,
     "Action Input of 'getExchangeRates' is not valid JSON"),
    ("deeply nested JSON", "Action: getExchangeRates\nAction Input: " + "[" * 200_000, False,
     "Action Input of 'getExchangeRates' nested too deeply"),
    ("megabyte JSON string, unterminated", 'Action: x\nAction Input: {"a": "' + "y" * MEGABYTE, False,
     "Action Input of 'x' is not valid JSON within the 16,384-character bound on the Action Inputs of a completion"),
    ("deep object, 10^4 levels", "Action: getExchangeRates\nAction Input: " + '{"a": ' * 10_000 + "1" + "}" * 10_000,
     False, "Action Input of 'getExchangeRates' nested too deeply"),
    ("megabyte nested object", "Action: getExchangeRates\nAction Input: " + NESTED_MEGABYTE, False,
     "Action Input of 'getExchangeRates' is not valid JSON within the 16,384-character bound on the Action Inputs "
     "of a completion"),
    ("inputs together over the bound", RIGHT_1 + ("Action: setPriceAlert\nAction Input: " + WIDE_8K + "\n") * 3, False,
     "Action Input of 'setPriceAlert' is not valid JSON within the 16,384-character bound on the Action Inputs of a "
     "completion"),
    ("too many mentions", "Thought: Action " * MAX_ACTION_MENTIONS + RIGHT_1 + RIGHT_2, False,
     "more than 256 mentions of 'Action'"),
    ("megabyte Action line", "Action: " + "g" * MEGABYTE + "\nAction Input: {}", False,
     "Action line longer than 1,024 characters"),
    ("over the completion bound", RIGHT_1 + RIGHT_2 + " " * MAX_COMPLETION_CHARS, False,
     "completion is longer than 2,097,152 characters"),
    ("wide object, names right", RIGHT_1 + RIGHT_2.replace('"page": 1}', '"page": 1, ' + WIDE_8K[1:]), True,
     "tool arguments differ from the expected ones"),
    ("one call missing", RIGHT_1, True, "tool names differ from the expected ones"),
    ("extra call", RIGHT_1 + RIGHT_2 + RIGHT_2, True, "tool names differ from the expected ones"),
    ("wrong tool", RIGHT_1.replace("getExchangeRates", "convertCurrency") + RIGHT_2, True,
     "tool names differ from the expected ones"),
    ("tool name case", RIGHT_1.replace("getExchangeRates", "GetExchangeRates") + RIGHT_2, True,
     "tool names differ from the expected ones"),
    ("wrong value", RIGHT_1.replace("CAD", "EUR") + RIGHT_2, True, "tool arguments differ from the expected ones"),
    ("extra argument", RIGHT_1.replace('"CAD"}', '"CAD", "amount": 5}') + RIGHT_2, True,
     "tool arguments differ from the expected ones"),
    ("bool is not 1", RIGHT_1 + RIGHT_2.replace('"page": 1', '"page": true'), True,
     "tool arguments differ from the expected ones"),
    ("number as string", RIGHT_1 + RIGHT_2.replace("1.2", '"1.2"'), True,
     "tool arguments differ from the expected ones"),
    ("unicode lookalike value", RIGHT_1.replace("USD", "U\u0405D", 1) + RIGHT_2, True,
     "tool arguments differ from the expected ones"),
    ("inline markers only", "Thought: Action: getExchangeRates Action Input: {}", False,
     "no Action / Action Input block"),
]


@pytest.mark.parametrize("name, completion, format_ok, reason", TOOL_ADVERSARIAL, ids=[c[0] for c in TOOL_ADVERSARIAL])
def test_tooluse_adversarial_outputs_score_zero_with_the_right_flags(name, completion, format_ok, reason):
    result = compute_score("tooluse", completion, TWO_CALL_GOLD)
    assert tuple(result) == RESULT_KEYS
    assert (result["score"], result["format_ok"], result["reason"]) == (0.0, format_ok, reason)
    assert len(result["pred"]) <= 300
    json.dumps(result)


@pytest.mark.parametrize("completion", [
    RIGHT_1 + RIGHT_2,
    RIGHT_2 + RIGHT_1,  # different keys: order does not matter
    "Thought: rates first.\n" + RIGHT_1 + "Observation: ...\nThought: now the alert.\n" + RIGHT_2,
    RIGHT_1 + RIGHT_2.replace("1.2,", "1.20,").replace('"page": 1', '"page": 1.0'),  # 1 == 1.0
    RIGHT_1.replace('{"base": "USD", "symbols": "CAD"}', '{"symbols": "CAD",\n  "base": "USD"} trailing words')
    + "  " + RIGHT_2,
    "Thought: " + "z" * MEGABYTE + "\n" + RIGHT_1 + RIGHT_2,
])
def test_tooluse_equivalent_completions_score_one(completion):
    assert compute_score("tooluse", completion, TWO_CALL_GOLD)["score"] == 1.0


def test_tooluse_feedback_needs_both_flags_and_reveals_the_calls():
    wrong = RIGHT_1
    assert compute_score("tooluse", wrong, TWO_CALL_GOLD)["feedback"] == ""
    with pytest.raises(ValueError, match="allow_answer_revealing_feedback"):
        compute_score("tooluse", wrong, TWO_CALL_GOLD, env_feedback=True)
    feedback = compute_score("tooluse", wrong, TWO_CALL_GOLD, env_feedback=True,
                             allow_answer_revealing_feedback=True)["feedback"]
    assert feedback == ("Your tool calls were not accepted (tool names differ from the expected ones). "
                        "The expected calls were:\n" + RIGHT_1 + RIGHT_2.rstrip("\n"))
    # the second flag alone enables nothing
    assert compute_score("tooluse", wrong, TWO_CALL_GOLD, allow_answer_revealing_feedback=True)["feedback"] == ""


@pytest.mark.parametrize("gold", ["not json", "{}", '[{"Action": "x"}]', '[{"Action": "x", "Action_Input": "[1]"}]'])
def test_malformed_tooluse_gold_is_a_data_error(gold):
    with pytest.raises(ValueError, match="tooluse ground_truth"):
        compute_score("tooluse", RIGHT_1, gold)


def test_parse_tool_calls_keeps_order_and_arguments():
    parsed = parse_tool_calls(RIGHT_1 + RIGHT_2)
    assert parsed.ok and [c.name for c in parsed.calls] == ["getExchangeRates", "setPriceAlert"]
    assert parsed.calls[1].arguments == {"currency_pair": "USD/CAD", "price": 1.2, "page": 1}


def test_every_tooluse_gold_pretty_printed_and_near_the_bounds_still_scores_one(splits):
    """The bounds leave room: indented JSON, a 1 MiB thought, and 200 mentions of "Action" in the reasoning."""
    for row in _tool_rows(splits.root):
        calls = parse_gold(row["answer"]).calls
        pretty = "\n".join(f"Action: {c.name}\nAction Input: {json.dumps(c.arguments, indent=4)}" for c in calls)
        padded = "Thought: " + "z" * MEGABYTE + " the Action" * 200 + "\n" + pretty
        assert compute_score("tooluse", padded, row["answer"])["score"] == 1.0, row["idx"]


def test_argument_budget_is_shared_by_all_calls_and_counts_every_character():
    """The first call reads " {}" (3 characters); the second " " + obj: obj may hold the rest of the budget less 1."""
    def completion(obj_chars):
        obj = '{"a": 1' + " " * (obj_chars - 8) + "}"
        return "Action: f\nAction Input: {}\nAction: g\nAction Input: " + obj + " and some trailing text"

    fits = parse_tool_calls(completion(MAX_ARGUMENT_CHARS - 4))
    assert fits.ok and [c.arguments for c in fits.calls] == [{}, {"a": 1}]
    over = parse_tool_calls(completion(MAX_ARGUMENT_CHARS - 3))
    assert (over.ok, len(over.calls), over.reason) == (
        False, 1, "Action Input of 'g' is not valid JSON within the 16,384-character bound on the Action Inputs of a "
                  "completion")


@pytest.mark.parametrize("gold, pred, equal", [
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": True}, {"a": 1}, False),
    ({"a": 1}, {"a": True}, False),
    ({"a": False}, {"a": False}, True),
    ({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]}, True),
    ({"a": [1, 2]}, {"a": [2, 1]}, False),
    ({"a": {"x": 1, "y": "z"}}, {"a": {"y": "z", "x": 1}}, True),
    ({"a": None}, {"a": "null"}, False),
    ({"a": "1"}, {"a": 1}, False),
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ({"a": 10 ** 400}, {"a": 10 ** 400}, True),
    ({"a": 10 ** 400}, {"a": float("inf")}, False),
])
def test_same_json_is_type_aware_and_order_free_for_objects(gold, pred, equal):
    assert same_json(gold, pred) is equal and same_json(pred, gold) is equal


ADVERSARIAL_TIMING = [
    # the worst cases of issue 12: 1.4-13.7 s each before the bounds (see docs/TASKS.md)
    ("1 MiB nested Action Input", "Action: getExchangeRates\nAction Input: " + NESTED_MEGABYTE),
    ("2 MiB of Action/Input pairs", "Action: getExchangeRates\nAction Input: {}\n" * (MAX_COMPLETION_CHARS // 42)),
    ("2 MiB of newlines", "\n" * MAX_COMPLETION_CHARS),
    ("2 MiB of 'Action ' words", "Action " * (MAX_COMPLETION_CHARS // 7)),
    ("2 MiB thought, right calls", "Thought: " + "z" * (MAX_COMPLETION_CHARS - 200) + "\n" + RIGHT_1 + RIGHT_2),
    ("126 calls of 8 KiB thoughts", ("Thought: " + "t" * 8000 + "\n" + RIGHT_2) * 126),
    ("16 KiB wide input, names right", RIGHT_1 + RIGHT_2.replace('"page": 1}', '"page": 1, ' + WIDE_8K[1:])),
]


@pytest.mark.parametrize("name, completion", ADVERSARIAL_TIMING, ids=[c[0] for c in ADVERSARIAL_TIMING])
def test_one_tooluse_verification_stays_in_milliseconds_whatever_the_model_writes(name, completion):
    """~1-3 ms each on one idle core; 50 ms leaves room for a loaded CI machine and still fails the unbounded code."""
    assert len(completion) <= MAX_COMPLETION_CHARS
    best = min(_timed(compute_score, "tooluse", completion, TWO_CALL_GOLD) for _ in range(3))
    assert best < 0.05, f"{name}: {best * 1e3:.1f} ms"


def _timed(function, *args):
    import time

    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


@pytest.mark.parametrize("answer, message", [
    ("[]", "tooluse ground_truth is an empty list of calls: no completion can score on it"),
    ('[{"Action": "", "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action is empty"),
    ('[{"Action": "  ", "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action is empty"),
    ('[{"Action": "f", "Action_Input": "{}"}, {"Action": 3, "Action_Input": "{}"}]',
     "tooluse ground_truth call 1 Action must be a string, got int"),
    ('[{"Action": null, "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action must be a string, got NoneType"),
    ('[{"Action": " f", "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action ' f' has surrounding spaces or "
     "a line break: no completion's Action line can match it"),
    ('[{"Action": "f\\ng", "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action 'f\\ng' has surrounding "
     "spaces or a line break: no completion's Action line can match it"),
])
def test_gold_answers_no_completion_can_match_are_data_errors(answer, message):
    with pytest.raises(ValueError) as caught:
        parse_gold(answer)
    assert str(caught.value) == message


# ---- determinism --------------------------------------------------------------------------------------------------

_DETERMINISM_SCRIPT = """
import json, sys
from srpo_verl.rewards import compute_score
cases = json.loads(sys.stdin.read())
print(json.dumps([compute_score(*case) for case in cases], sort_keys=True))
"""


def test_verifiers_are_deterministic_across_calls_and_hash_seeds():
    cases = [["sciknoweval", c[1][:2000], "B"] for c in MCQ_ADVERSARIAL] + \
            [["tooluse", c[1][:2000], TWO_CALL_GOLD] for c in TOOL_ADVERSARIAL] + \
            [["tooluse", RIGHT_2 + RIGHT_1, TWO_CALL_GOLD], ["synthetic", "<answer>4</answer>", "4"]]
    in_process = [compute_score(*case) for case in cases]
    assert in_process == [compute_score(*case) for case in cases]
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
        proc = subprocess.run([sys.executable, "-c", _DETERMINISM_SCRIPT], input=json.dumps(cases), env=env,
                              capture_output=True, text=True, check=True)
        outputs.append(json.loads(proc.stdout))
    assert outputs[0] == outputs[1] == json.loads(json.dumps(in_process))
