"""compute_score dispatch, result shape, synthetic verifier and the verl entry file (SRPO_SPEC §5.4)."""

import importlib.util
import json
from pathlib import Path

import pytest

import srpo_verl
from srpo_verl.rewards import RESULT_KEYS, compute_score

ENTRY_FILE = Path(srpo_verl.__file__).parent / "rewards" / "verl_entry.py"


def _check_shape(result):
    assert tuple(result) == RESULT_KEYS
    json.dumps(result)  # JSON scalars only
    assert isinstance(result["score"], float) and result["score"] in (0.0, 1.0)
    assert result["acc"] == result["score"]
    assert isinstance(result["pred"], str) and isinstance(result["feedback"], str)
    assert isinstance(result["format_ok"], bool) and isinstance(result["reason"], str)


@pytest.mark.parametrize(
    "source, text, gold, score, format_ok, pred",
    [
        ("synthetic", "Sum: <answer> 7 </answer>", "7", 1.0, True, "7"),
        ("synthetic", "<answer>7</answer>", 7, 1.0, True, "7"),  # non-str gold goes through str()
        ("synthetic/add", "<answer>3</answer> then <answer>7</answer>", " 7 ", 1.0, True, "7"),
        ("synthetic", "<answer>7</answer> then <answer>3</answer>", "7", 0.0, True, "3"),
        ("synthetic", "7", "7", 0.0, False, ""),
        ("synthetic", "<answer>07</answer>", "7", 0.0, True, "07"),
        ("synthetic", "", "7", 0.0, False, ""),
    ],
)
def test_synthetic_verifier(source, text, gold, score, format_ok, pred):
    result = compute_score(source, text, gold)
    _check_shape(result)
    assert (result["score"], result["format_ok"], result["pred"]) == (score, format_ok, pred)
    assert result["feedback"] == ""


def test_unknown_source_names_itself_and_the_known_ones():
    with pytest.raises(ValueError) as err:
        compute_score("gsm8k", "<answer>1</answer>", "1")
    message = str(err.value)
    assert "'gsm8k'" in message and "sciknoweval" in message and "synthetic" in message and "tooluse" in message


def test_verl_entry_file_loads_standalone_by_path():
    spec = importlib.util.spec_from_file_location("custom_module", ENTRY_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.compute_score("synthetic", "<answer>5</answer>", "5", extra_info={"index": 0})
    assert result["score"] == 1.0


def test_verl_call_kwargs_are_accepted_and_misspelled_reward_kwargs_are_not():
    result = compute_score("synthetic", "<answer>5</answer>", "5", None, reward_router_address="127.0.0.1:9",
                           reward_model_tokenizer=None)
    assert result["score"] == 1.0
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['env_feedbak'\]"):
        compute_score("synthetic", "<answer>5</answer>", "5", env_feedbak=True)


def test_reward_kwargs_from_verl_config_reach_the_verifier():
    """verl wraps the loaded function with reward_kwargs (trainer/ppo/reward.py::get_custom_reward_fn)."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(ENTRY_FILE), "name": "compute_score", "reward_kwargs": {"env_feedback": True}}}})
    fn = get_custom_reward_fn(config)
    result = fn(data_source="synthetic", solution_str="<answer>4</answer>", ground_truth="5", extra_info={})
    assert result["feedback"] == "Your answer was not accepted: wrong answer."


def test_feedback_is_off_by_default_and_opt_in():
    assert compute_score("synthetic", "<answer>4</answer>", "5")["feedback"] == ""
    fb = compute_score("synthetic", "<answer>4</answer>", "5", env_feedback=True)["feedback"]
    assert fb == "Your answer was not accepted: wrong answer." and "5" not in fb
    # a correct attempt gets no feedback even when enabled
    assert compute_score("synthetic", "<answer>5</answer>", "5", env_feedback=True)["feedback"] == ""


def test_feedback_kwargs_must_be_bools():
    with pytest.raises(ValueError, match="env_feedback must be a bool"):
        compute_score("synthetic", "<answer>5</answer>", "5", env_feedback="false")
