"""srpo_verl's reward function on data sources it does not own: verl 0.9.1's default_compute_score decides, the
result keeps srpo_verl's keys (verl builds the reward-extra columns from the first sample's keys)."""

from __future__ import annotations

import ast
import inspect

import pytest

from srpo_verl.rewards import KNOWN_FAMILIES, RESULT_KEYS, compute_score, data_source_family, verl_sources

# (data_source, completion, ground truth, expected score, acc, pred, format_ok)
CASES = [
    ("openai/gsm8k", "3 + 4 = 7 apples.\n#### 7", "7", 1.0, 1.0, "7", True),
    ("openai/gsm8k", "so #### 1,000", "1000", 1.0, 1.0, "1000", True),
    ("openai/gsm8k", "#### 8", "7", 0.0, 0.0, "8", True),
    ("openai/gsm8k", "The answer is 7.", "7", 0.0, 0.0, "", False),
    ("lighteval/MATH", "Hence \\boxed{\\frac{1}{2}}.", "\\frac12", 1.0, 1.0, "\\frac{1}{2}", True),
    ("HuggingFaceH4/MATH-500", "\\boxed{3}", "4", 0.0, 0.0, "3", True),
    ("DigitalLearningGmbH/MATH-lighteval", "no box here: 4", "4", 0.0, 0.0, "", False),
    # math_dapo / aime*: verl returns +-1, mapped onto 1/0
    ("math_dapo", "...\nAnswer: 34", "34", 1.0, 1.0, "34", True),
    ("math_dapo", "...\nAnswer: 35", "34", 0.0, 0.0, "35", True),
    ("aime2024", "nothing", "34", 0.0, 0.0, "[INVALID]", False),
    ("aime_2025/I", "\\boxed{7}", "7", 1.0, 1.0, "7", True),
    ("numina_olympiads", "so the answer is 12", "12", 1.0, 1.0, "12", True),
    ("numina_cn_k12", "no idea", "12", 0.0, 0.0, "no idea", False),
    # graded: search-R1 gives 0.25 for a right answer with more than 10 answer tags
    ("searchR1_nq", "<answer>The Paris</answer>", {"target": ["paris"]}, 1.0, 1.0, "The Paris", True),
    ("searchR1_nq", "<answer>x</answer>" * 11 + "<answer>Paris</answer>", {"target": ["paris"]}, 0.25, 1.0,
     "Paris", True),
    ("searchR1_hotpotqa", "Paris", {"target": ["paris"]}, 0.0, 0.0, "", False),
    # graded: geometry3k gives 0.9 x answer + 0.1 x format
    ("hiyouga/geometry3k", "<think>r</think> \\boxed{3}", "3", 1.0, 1.0, "3", True),
    ("hiyouga/geometry3k", "\\boxed{3}", "3", 0.9, 1.0, "3", False),
    ("hiyouga/geometry3k", "<think>r</think> \\boxed{4}", "3", 0.1, 0.0, "4", True),
]


def _verl_score(data_source, solution, gold) -> float:
    from verl.utils.reward_score import default_compute_score

    raw = default_compute_score(data_source, solution, gold)
    if isinstance(raw, dict):  # math_dapo / aime*: {score: +-1, acc, pred}
        return 1.0 if raw["acc"] else 0.0
    return float(raw)


@pytest.mark.parametrize("source, solution, gold, score, acc, pred, format_ok", CASES)
def test_verl_sources_are_scored_by_verl_with_our_keys(source, solution, gold, score, acc, pred, format_ok):
    result = compute_score(source, solution, gold)
    assert tuple(result) == RESULT_KEYS
    assert result["score"] == pytest.approx(score) and result["score"] == pytest.approx(_verl_score(source, solution,
                                                                                                     gold))
    assert (result["acc"], result["pred"], result["format_ok"]) == (acc, pred, format_ok)
    assert result["reason"] == ("correct" if acc else "wrong answer" if format_ok else result["reason"])
    assert result["feedback"] == "" and 0.0 <= result["score"] <= 1.0
    assert all(isinstance(v, (str, bool, float)) for v in result.values())


def test_math_dapo_minus_one_is_zero_and_every_type_is_stable():
    wrong = compute_score("math_dapo", "Answer: 1", "2")
    right = compute_score("math_dapo", "Answer: 2", "2")
    ours = compute_score("synthetic", "<answer>2</answer>", "2")
    assert (wrong["score"], right["score"]) == (0.0, 1.0)
    for result in (wrong, right, ours):
        assert {k: type(v) for k, v in result.items()} == {k: type(v) for k, v in ours.items()}


def test_family_is_not_the_text_before_a_slash():
    assert data_source_family("openai/gsm8k") == "verl"
    assert data_source_family("lighteval/MATH") == "verl"
    assert data_source_family("sciknoweval/chemistry") == "sciknoweval"
    assert data_source_family("math_verify/MATH-500") == "math_verify"
    assert data_source_family("aime2025") == "verl"
    with pytest.raises(ValueError, match="unknown data_source 'openai'"):
        data_source_family("openai")
    with pytest.raises(ValueError, match="unknown data_source 'openai/gsm8k_v2'"):
        data_source_family("openai/gsm8k_v2")


def test_an_unknown_source_names_both_lists_in_one_line():
    with pytest.raises(ValueError) as caught:
        compute_score("my_lab/arith", "x", "1")
    message = str(caught.value)
    assert "\n" not in message
    for family in KNOWN_FAMILIES:
        assert family in message
    for source in ("openai/gsm8k", "math_dapo", "aime*", "numina_olympiads", "hiyouga/geometry3k", "searchR1_nq"):
        assert source in message


@pytest.mark.parametrize("source", verl_sources.CODE)
def test_verl_code_tasks_are_refused_with_the_way_to_run_them(source):
    with pytest.raises(ValueError, match=r"verl code task.*reward\.custom_reward_function\.path=null"):
        compute_score(source, "print(1)", "{}")


def test_feedback_for_verl_sources_is_opt_in_and_never_the_gold():
    result = compute_score("openai/gsm8k", "#### 8", "7", env_feedback=True)
    assert result["feedback"] == "Your answer was not accepted: wrong answer." and "7" not in result["feedback"]
    assert compute_score("openai/gsm8k", "#### 7", "7", env_feedback=True)["feedback"] == ""


def _verl_source_names():
    """The data-source strings verl's default_compute_score compares against, read from its source."""
    from verl.utils.reward_score import default_compute_score

    tree = ast.parse(inspect.getsource(default_compute_score))
    exact, prefixes = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "data_source":
            for comparator in node.comparators:
                for constant in ast.walk(comparator):
                    if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                        exact.add(constant.value)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "data_source"):
            prefixes.add(node.args[0].value)
    return exact, prefixes


def test_the_verl_source_list_is_the_installed_verls():
    exact, prefixes = _verl_source_names()
    assert exact == set(verl_sources.VERL_SOURCES)
    assert prefixes == {verl_sources.AIME_PREFIX}
    assert not set(KNOWN_FAMILIES) & exact, "an srpo_verl family would shadow a verl source"


def test_a_users_own_reward_function_keeps_srpo_routing(tmp_path):
    """Routing reads only the summed reward (rm_scores); a user's reward path passes start-up with the generic
    range, and the same threshold separates verl's -1/+1."""
    import torch

    from srpo_verl.preflight.config import GENERIC_REWARD_RANGE, reward_range
    from srpo_verl.verl_ext.settings import SRPOSettings
    from srpo_verl.verl_ext.layout import route_batch

    own = tmp_path / "my_reward.py"
    own.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw):\n"
                   "    return 1.0 if solution_str.strip() == ground_truth else -1.0\n")
    config = {"reward": {"custom_reward_function": {"path": str(own), "name": "compute_score"}}}
    settings = SRPOSettings()
    assert reward_range(config, settings)[0] == GENERIC_REWARD_RANGE
    low, high = GENERIC_REWARD_RANGE
    assert low < settings.success_threshold <= high
    rewards = torch.tensor([1.0, -1.0, -1.0, -1.0])  # one prompt, 4 rollouts: one right
    route, _ = route_batch([f"p_0_{i}" for i in range(4)], rewards, torch.zeros(4, dtype=torch.bool),
                           settings.success_threshold, "srpo")
    assert route.distill.tolist() == [False, True, True, True]
