"""End-to-end: the per-step sample view and the collapse early warning (issue 16 §2, §3) in real verl runs on CPU.

  samples    reads the session ``srpo`` run (tests/e2e/conftest.py, no extra run): step 1's samples file, its
             console lines, and the top-K mass gap metric;
  collapse   a forced collapse: SRPO at an absurd learning rate (actor lr 1.0) for 1 step, validated before and
             after on 16 test prompts (greedy): the format rate falls and the trainer prints the warning line.
             A run of its own: 148 s measured on the loaded 2-core host (training + both validations ~9 s, the rest
             Ray/worker start-up), over the suite's ~60 s per addition, so it is marked ``slow`` (outside the
             default selection; run it with ``-m slow``). Its metrics are recorded in
             tests/fixtures/forced_collapse/metrics.jsonl, which tests/unit/test_collapse_warning.py replays.
"""

from __future__ import annotations

import re

import pytest

from srpo_verl.jsonl import load_jsonl
from srpo_verl.report.collapse import DROP_METRIC, WARN_METRIC
from srpo_verl.bench.cpu_run import CpuRun

pytestmark = pytest.mark.e2e

FORMAT_KEY = "val-aux/synthetic/format_ok/mean@1"  # verl's mean of the verifier's format_ok, 1 greedy sample


def test_samples_of_step_1_show_routes_teacher_prompts_and_token_summaries(srpo):
    srpo.check([1, 2, 3])
    routes = {row["key"]: row for row in srpo.routes(1)}
    rollouts = {row["uid"]: row for row in srpo.rollouts(1)}
    samples = load_jsonl(srpo.workdir / "routes" / "samples_step_1.jsonl")
    # srpo.log_samples=4 at step 1 (and every 10 steps): steps 2 and 3 wrote none
    assert len(samples) == 4
    assert not (srpo.workdir / "routes" / "samples_step_2.jsonl").exists()
    labels = [s["route"] for s in samples]
    assert labels[0] == "sdpo" and len(set(labels)) >= 2, labels  # round-robin over the routes, SDPO first
    for s in samples:
        route = routes[s["key"]]
        assert (s["route"] == "sdpo") == route["distill"] and s["reward"] == route["reward"]
        assert s["demo_key"] == route["demo_key"]
        assert s["response"] == rollouts[s["key"]]["output"]
        assert s["prompt"].endswith(rollouts[s["key"]]["input"][-20:])
        assert len(s["response_tokens"]) == route["response_len"]
        if s["route"] == "sdpo":
            # the rendered teacher prompt holds the demonstration: the correct sibling's response
            assert "Correct solution:" in s["teacher_prompt"]
            assert rollouts[s["demo_key"]]["output"] in s["teacher_prompt"]
            for summary in (s["teacher_entropy"], s["weight"]):
                assert len(summary["per_token"]) == route["response_len"]
                assert summary["min"] <= summary["mean"] <= summary["max"]
            assert s["teacher_entropy"]["min"] > 0 and s["weight"]["min"] > 0 and s["weights_applied"]
        else:
            assert s["teacher_prompt"] is None and s["teacher_entropy"] is None and s["weight"] is None
    log = srpo.log_path.read_text(errors="replace")
    lines = re.findall(r"\[srpo\] sample (\d)/4 step 1 (\w+) reward=", log)
    assert [(int(i), label) for i, label in lines] == [(i + 1, s["route"]) for i, s in enumerate(samples)]
    # the top-K mass gap (student - teacher mass on the distilled ids) on every step that distilled
    for step, m in srpo.steps.items():
        if m["srpo/route/sdpo_frac"] > 0:
            assert -1.0 <= m["srpo/topk/mass_gap"] <= 1.0 and m["srpo/topk/mass_gap"] != 0.0, step
        assert "srpo/topk/mass_gap_sum" not in m and "actor/srpo/topk/mass_gap_sum" not in m


@pytest.mark.slow
def test_forced_collapse_prints_the_format_warning(tiny_assets, tmp_path):
    run = CpuRun(tmp_path, *tiny_assets, "srpo.method=srpo", "trainer.total_training_steps=1",
                 "trainer.val_before_train=true", "trainer.test_freq=1", "data.val_max_samples=16",
                 "actor_rollout_ref.actor.optim.lr=1.0", "srpo.log_samples=0", dumps=False)
    run.check([0, 1])
    before, after = run.steps[0][FORMAT_KEY], run.steps[1][FORMAT_KEY]
    assert before > 0.9 and before - after > 0.2, (before, after)
    line = (f"[srpo] WARNING: validation format rate fell from {before:.3f} (step 0) to {after:.3f} (step 1), "
            "more than srpo.format_drop_warn=0.2")
    assert line in run.log_path.read_text(errors="replace")
    assert run.steps[1][WARN_METRIC] == 1.0 and run.steps[1][DROP_METRIC] == pytest.approx(before - after)
    assert run.steps[0][WARN_METRIC] == 0.0
    print(f"forced collapse run: {run.wall_s:.1f} s")
