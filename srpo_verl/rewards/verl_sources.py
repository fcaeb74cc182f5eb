"""verl's own data sources behind srpo_verl's reward function: verl 0.9.1's scorers, our result keys.

A data source srpo_verl does not own (`openai/gsm8k`, `lighteval/MATH`, `math_dapo`, `aime2024`, ...) is scored by
verl's `verl.utils.reward_score.default_compute_score`, exactly as verl would score it without a custom reward
function. Its result is then put in srpo_verl's result shape (`result.RESULT_KEYS`), because verl builds the
reward-extra columns from the first sample's keys and a batch may mix sources:

- `score`: the reward the advantage sees, always in [0, 1]. verl's 0/1 scorers are kept as they are; the ±1 of
  math_dapo / aime* is mapped to 1/0 (an affine map: GRPO's std-normalised advantage is unchanged, the centred one
  Dr.GRPO-style is halved, and `srpo.success_threshold=0.5` separates right from wrong as it does for ours). Graded
  scorers keep verl's value: geometry3k gives 0.9 x answer + 0.1 x format, search-R1 gives 0.25 for a right answer
  with more than 10 answer tags.
- `acc`: 1.0 iff verl's scorer judges the answer right (its `acc`, or the answer part of a graded score).
- `pred`, `format_ok`, `reason`: what verl's scorer extracted, with verl's own extraction helpers, when it has one.

verl's code tasks (codecontests, apps, codeforces, taco) are refused: verl scores them by running the model's code,
in its sandbox (`reward.sandbox_fusion`) only when verl's default reward is used, so they run with
`reward.custom_reward_function.path=null` (SRPO routes on any reward).
"""

from __future__ import annotations

from srpo_verl.rewards.result import RESULT_KEYS, clip_for_log

GSM8K = ("openai/gsm8k",)
MATH_LIGHTEVAL = ("lighteval/MATH", "DigitalLearningGmbH/MATH-lighteval", "HuggingFaceH4/MATH-500")
MATH_DAPO = ("math_dapo", "math", "math_dapo_reasoning")  # and every name starting with "aime"
AIME_PREFIX = "aime"
PRIME_MATH = ("numina_aops_forum", "numina_synthetic_math", "numina_amc_aime", "numina_synthetic_amc",
              "numina_cn_k12", "numina_olympiads")
GEOMETRY3K = ("hiyouga/geometry3k",)
SEARCH_R1 = ("searchR1_nq", "searchR1_triviaqa", "searchR1_popqa", "searchR1_hotpotqa", "searchR1_2wikimultihopqa",
             "searchR1_musique", "searchR1_bamboogle")
# Scored by verl by running the model's code: not through srpo_verl's reward function (module docstring).
CODE = ("codecontests", "apps", "codeforces", "taco")

COVERED = GSM8K + MATH_LIGHTEVAL + MATH_DAPO + PRIME_MATH + GEOMETRY3K + SEARCH_R1
# Every data source verl 0.9.1's default_compute_score names (a unit test pins this against the installed verl).
VERL_SOURCES = COVERED + CODE


def is_verl_source(data_source: str) -> bool:
    """Whether verl 0.9.1's default_compute_score knows `data_source` (covered here or a code task)."""
    return data_source in VERL_SOURCES or data_source.startswith(AIME_PREFIX)


def describe_verl_sources() -> str:
    """verl's data sources in one line, for error messages."""
    return ", ".join((*COVERED[:len(GSM8K + MATH_LIGHTEVAL + MATH_DAPO)], f"{AIME_PREFIX}*",
                      *COVERED[len(GSM8K + MATH_LIGHTEVAL + MATH_DAPO):]))


def refuse_code_source(data_source: str) -> str:
    """The one-line reason a verl code task is not scored through srpo_verl's reward function."""
    return (f"data_source {data_source!r} is a verl code task, scored by running the model's code (verl's sandbox, "
            "reward.sandbox_fusion.url, is wired only into verl's own default reward); run it with "
            "reward.custom_reward_function.path=null, SRPO routes on any reward (docs/TASKS.md 'Any verl task')")


def graded_result(score: float, acc: bool, pred, format_ok: bool, reason: str, feedback: str = "") -> dict:
    """srpo_verl's result dict (keys = RESULT_KEYS) for a reward `score` in [0, 1] that may be graded."""
    result = {
        "score": float(score),
        "acc": 1.0 if acc else 0.0,
        "pred": clip_for_log("" if pred is None else str(pred)),
        "format_ok": bool(format_ok),
        "feedback": feedback,
        "reason": reason,
    }
    assert tuple(result) == RESULT_KEYS
    return result


def _verdict(acc: bool, format_ok: bool, missing: str) -> str:
    return "correct" if acc else ("wrong answer" if format_ok else missing)


def _gsm8k(data_source, solution_str, ground_truth, extra_info):
    from verl.utils.reward_score import default_compute_score, gsm8k

    score = default_compute_score(data_source, solution_str, ground_truth, extra_info)
    pred = gsm8k.extract_solution(solution_str, method="strict")
    return score, score >= 1.0, pred, pred is not None, "no '#### <number>' in the last 300 characters"


def _math_lighteval(data_source, solution_str, ground_truth, extra_info):
    from verl.utils.reward_score import default_compute_score, math_reward

    score = default_compute_score(data_source, solution_str, ground_truth, extra_info)
    boxed = math_reward.last_boxed_only_string(solution_str)
    pred = None
    if boxed is not None:
        try:
            pred = math_reward.remove_boxed(boxed)
        except (AssertionError, IndexError):  # "\boxed 5" forms the helper does not strip
            pred = boxed
    return score, score >= 1.0, pred, boxed is not None, "no \\boxed{...} answer"


def _math_dapo(data_source, solution_str, ground_truth, extra_info):
    from verl.utils.reward_score import default_compute_score

    result = default_compute_score(data_source, solution_str, ground_truth, extra_info)
    acc = bool(result["acc"])
    pred = result.get("pred")
    format_ok = pred is not None and pred != "[INVALID]"
    return (1.0 if acc else 0.0), acc, pred, format_ok, "no 'Answer: ...' line or \\boxed{...} in the last 300 characters"


def _prime_math(data_source, solution_str, ground_truth, extra_info):
    from verl.utils.reward_score import default_compute_score
    from verl.utils.reward_score.prime_math import match_answer

    score = default_compute_score(data_source, solution_str, ground_truth, extra_info)
    matched, pred = match_answer(str(solution_str))
    return score, score >= 1.0, pred, matched, "no answer with a digit found"


def _geometry3k(data_source, solution_str, ground_truth, extra_info):
    from verl.utils.reward_score import default_compute_score, geo3k

    score = default_compute_score(data_source, solution_str, ground_truth, extra_info)
    acc = geo3k.acc_reward(solution_str, ground_truth) >= 1.0
    format_ok = geo3k.format_reward(solution_str) >= 1.0
    from mathruler.grader import extract_boxed_content

    return score, acc, extract_boxed_content(solution_str), format_ok, "not '<think>...</think> ... \\boxed{...}'"


def _search_r1(data_source, solution_str, ground_truth, extra_info):
    from verl.utils.reward_score import default_compute_score, search_r1_like_qa_em

    score = default_compute_score(data_source, solution_str, ground_truth, extra_info)
    pred = search_r1_like_qa_em.extract_solution(solution_str)
    acc = pred is not None and bool(search_r1_like_qa_em.em_check(pred, ground_truth["target"]))
    return score, acc, pred, pred is not None, "no <answer>...</answer> block"


def _adapter(data_source: str):
    for names, adapter in ((GSM8K, _gsm8k), (MATH_LIGHTEVAL, _math_lighteval), (MATH_DAPO, _math_dapo),
                           (PRIME_MATH, _prime_math), (GEOMETRY3K, _geometry3k), (SEARCH_R1, _search_r1)):
        if data_source in names:
            return adapter
    if data_source.startswith(AIME_PREFIX):
        return _math_dapo
    raise ValueError(refuse_code_source(data_source) if data_source in CODE else f"not a verl source: {data_source!r}")


def score_verl_source(data_source: str, solution_str: str, ground_truth, extra_info=None,
                      with_feedback: bool = False) -> dict:
    """Score one completion with verl's default_compute_score and return srpo_verl's result dict.

    Raises ValueError for a verl code task (module docstring) or a source verl does not know; whatever verl's
    scorer raises otherwise (a malformed ground truth) propagates, as it would in verl.
    """
    score, acc, pred, format_ok, missing = _adapter(data_source)(data_source, solution_str, ground_truth, extra_info)
    reason = _verdict(acc, format_ok, missing)
    feedback = f"Your answer was not accepted: {reason}." if with_feedback and not acc else ""
    return graded_result(score, acc, pred, format_ok, reason, feedback)
