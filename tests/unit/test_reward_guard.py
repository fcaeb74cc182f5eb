"""Reward-function failures recorded in verl's own loader (get_custom_reward_fn, wrapped by the plugin), counted per
step and bounded (srpo_verl.verl_ext.reward_guard)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from srpo_verl.verl_ext import reward_guard as G

FAULTY = Path(__file__).resolve().parents[1] / "fixtures" / "faulty_reward" / "reward.py"


@pytest.fixture()
def sink():
    log = G.ErrorLog()
    G._SINK.append(log.record)
    yield log
    G._SINK.clear()


def config(path=FAULTY, name="compute_score"):
    return OmegaConf.create({"reward": {"custom_reward_function": {"path": str(path), "name": name,
                                                                   "reward_kwargs": {}}}})


def test_verls_loader_returns_the_recording_wrapper_and_the_error_still_raises(sink, monkeypatch):
    import srpo_verl.plugin  # noqa: F401  (installs the hook, as in every Ray worker)
    from verl.trainer.ppo import reward

    assert getattr(reward.get_custom_reward_fn, G.MARKER, False)
    fn = reward.get_custom_reward_fn(config())
    ok = fn(data_source="synthetic", solution_str="<answer>8</answer>", ground_truth="8", extra_info={})
    assert ok["score"] == 1.0 and sink.count == 0
    with pytest.raises(ValueError, match="cannot parse"):
        fn(data_source="synthetic", solution_str="<answer>7</answer>", ground_truth="9", extra_info={})
    monkeypatch.setenv("FAULTY_DIGIT", "all")
    with pytest.raises(ValueError):
        fn(data_source="other", solution_str="<answer>1</answer>", ground_truth="1", extra_info={})
    assert sink.drain() == {"count": 2, "by_source": {"synthetic": 1, "other": 1}, "samples": [
        {"data_source": "synthetic", "error": "ValueError: cannot parse '<answer>7</answer>'",
         "response": "<answer>7</answer>", "ground_truth": "9"},
        {"data_source": "other", "error": "ValueError: cannot parse '<answer>1</answer>'",
         "response": "<answer>1</answer>", "ground_truth": "1"}]}
    assert sink.drain()["count"] == 0


def test_an_async_reward_function_stays_async(sink, tmp_path):
    from verl.trainer.ppo import reward

    path = tmp_path / "async_reward.py"
    path.write_text("async def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n"
                    "    raise KeyError(ground_truth)\n")
    fn = reward.get_custom_reward_fn(config(path))
    with pytest.raises(KeyError):
        asyncio.run(fn(data_source="s", solution_str="x", ground_truth="g", extra_info={}))
    assert sink.count == 1 and sink.samples[0]["error"] == "KeyError: 'g'"


def _log(count, sources):
    log = G.ErrorLog()
    for i in range(count):
        log.record(G.record_of({"data_source": sources[i % len(sources)], "solution_str": f"<answer>{i}</answer>",
                                "ground_truth": "7"}, ValueError("boom")))
    return log.drain()


FN = "reward.custom_reward_function compute_score (/r.py)"


def test_step_metrics_and_the_bound():
    metrics, line = G.step_verdict(3, _log(0, ["a"]), 32, 32, 0, 32, 0.01, FN)
    assert metrics == {"srpo/reward/errors": 0.0, "srpo/reward/error_rate": 0.0, "srpo/batch/dropped_frac": 0.0,
                       "srpo/batch/padding_frac": 0.0} and line is None
    # the case: 8 of 8 prompts x 4 kept 8 rollouts, padded to 32
    metrics, line = G.step_verdict(1, _log(24, ["synthetic", "synthetic", "gsm8k"]), 32, 8, 24, 32, 0.01, FN)
    assert metrics == {"srpo/reward/errors": 24.0, "srpo/reward/error_rate": 0.75, "srpo/batch/dropped_frac": 0.75,
                       "srpo/batch/padding_frac": 0.75}
    assert line == ("step 1: reward.custom_reward_function compute_score (/r.py) raised on 24 of 32 rollouts (75.0%), "
                    "above srpo.max_reward_error_rate=0.01 (by data source: synthetic: 16, gsm8k: 8); data source "
                    "'synthetic': ValueError: boom; one sample: ground_truth='7' response='<answer>0</answer>'; fix "
                    "the reward function or the data, or raise srpo.max_reward_error_rate")
    assert G.step_verdict(1, _log(8, ["a"]), 32, 24, 8, 32, 0.25, FN)[1] is None  # at the bound: kept
    assert G.step_verdict(1, _log(1, ["a"]), 32, 31, 1, 32, 0.0, FN)[1] is not None  # 0: any error stops


def test_the_all_failed_replay_buffer_error_names_the_reward_function():
    line = G.all_failed_line(1, _log(32, ["synthetic"]), FN)
    assert line.startswith("step 1: reward.custom_reward_function compute_score (/r.py) raised on 32 rollouts, and no "
                           "trajectory of the step was left to train on (verl's replay buffer dropped every group) "
                           "(by data source: synthetic: 32); data source 'synthetic': ValueError: boom")
    assert G.all_failed_line(1, _log(0, ["a"]), FN) is None
    assert G.reward_fn_name(OmegaConf.create({"reward": {"custom_reward_function": {"path": None}}})) == \
        "verl's default_compute_score"


def test_the_threshold_key_is_checked():
    from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings

    assert SRPOSettings().max_reward_error_rate == 0.01
    assert SRPOSettings(max_reward_error_rate=0).max_reward_error_rate == 0
    with pytest.raises(RunConfigError, match=r"srpo.max_reward_error_rate=1.5 must be in \[0, 1\]"):
        SRPOSettings(max_reward_error_rate=1.5)
