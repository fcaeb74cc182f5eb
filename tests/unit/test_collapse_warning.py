"""The collapse early warning (issue 16 §3) on recorded validation metric streams: the trainer's FormatDropWatch and
the report's format-rate table."""

from pathlib import Path

import pytest

from srpo_verl.report import collapse as C
from srpo_verl.report.cli import report_main
from srpo_verl.report.logs import read_jsonl

FMT = "val-aux/synthetic/format_ok/mean@4"
ACC = "val-core/synthetic/acc/mean@4"


def test_format_rate_keys_take_all_samples_per_source():
    metrics = {"val-aux/synthetic/format_ok/mean@2": 0.5, FMT: 0.6, "val-aux/synthetic/format_ok/std@4": 0.1,
               "val-aux/other/format_ok/mean@1": 0.9, ACC: 0.3, "val-aux/synthetic/acc/best@4/mean": 1.0}
    assert C.format_rate_keys(metrics) == {"other": "val-aux/other/format_ok/mean@1", "synthetic": FMT}
    assert C.format_rate_keys({ACC: 0.3}) == {}


def test_watch_warns_once_the_drop_from_the_best_exceeds_the_threshold():
    watch = C.FormatDropWatch(0.2)
    stream = [(0, 0.90), (10, 0.95), (20, 0.80), (30, 0.70), (40, 0.74), (50, 0.97)]
    out = [watch.update(step, {FMT: rate, ACC: 0.5}) for step, rate in stream]
    assert [m[C.WARN_METRIC] for m, _ in out] == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert [round(m[C.DROP_METRIC], 6) for m, _ in out] == [0.0, 0.0, 0.15, 0.25, 0.21, 0.0]
    assert out[3][1] == ("[srpo] WARNING: validation format rate fell from 0.950 (step 10) to 0.700 (step 30), "
                         "more than srpo.format_drop_warn=0.2")
    assert out[2][1] is None and out[5][1] is None and watch.best["synthetic"] == (0.97, 50)
    assert watch.update(60, {ACC: 0.5}) == ({}, None)  # a validation without the format rate: nothing


def test_watch_off_and_several_sources():
    off = C.FormatDropWatch(None)
    off.update(0, {FMT: 1.0})
    assert off.update(1, {FMT: 0.0}) == ({C.DROP_METRIC: 1.0, C.WARN_METRIC: 0.0}, None)
    two = C.FormatDropWatch(0.1)
    other = "val-aux/other/format_ok/mean@1"
    two.update(0, {FMT: 0.9, other: 0.8})
    metrics, line = two.update(1, {FMT: 0.85, other: 0.5, "val-aux/new/format_ok/mean@1": 0.1})
    assert metrics[C.DROP_METRIC] == pytest.approx(0.3) and line.endswith("srpo.format_drop_warn=0.1 [other]")
    nan = C.FormatDropWatch(0.1)
    nan.update(0, {FMT: 0.9})
    assert nan.update(1, {FMT: float("nan")}) == ({C.DROP_METRIC: 0.0, C.WARN_METRIC: 0.0}, None)


def test_replay_and_summary_of_a_recorded_collapse():
    # a run whose train reward stays high while its answer format collapses (the third-party reproduction's shape)
    steps = {0: {FMT: 0.92, ACC: 0.40}, 1: {"critic/score/mean": 0.6}, 2: {FMT: 0.96, ACC: 0.50},
             4: {FMT: 0.88, ACC: 0.45, "critic/score/mean": 0.7}, 6: {FMT: 0.31, ACC: 0.12, "critic/score/mean": 0.7}}
    assert C.replay(0.2, steps) == [(6, "[srpo] WARNING: validation format rate fell from 0.960 (step 2) to 0.310 "
                                        "(step 6), more than srpo.format_drop_warn=0.2")]
    (summary,) = C.format_summaries("srpo/toy", steps, 0.2)
    assert (summary.first, summary.best, summary.last) == ((0.92, 0), (0.96, 2), (0.31, 6))
    assert summary.last_acc == 0.12 and summary.max_drop == pytest.approx(0.65) and summary.warned_at == (6,)
    table = C.render_format_markdown([summary], 0.2).splitlines()
    assert table[4] == "| srpo/toy | synthetic | 12.0 | 31.0 (step 6) | 92.0 (step 0) | 96.0 (step 2) | 65.0 | 6 |"
    assert C.format_summaries("grpo/toy", {1: {ACC: 0.5}}, 0.2) == []


def test_report_cli_prints_the_format_table(tmp_path, capsys):
    import json

    run = tmp_path / "srpo" / "toy"
    run.mkdir(parents=True)
    steps = {0: {FMT: 0.9, ACC: 0.4}, 1: {"timing_s/step": 2.0}, 2: {"timing_s/step": 2.0, FMT: 0.5, ACC: 0.1}}
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in steps.items()))
    assert report_main(["--root", str(tmp_path), "--windows", "10s", "--step-windows", "2"]) == 0
    out = capsys.readouterr().out
    assert "### Validation format rate (collapse early warning)" in out
    assert "| srpo/toy | synthetic | 10.0 | 50.0 (step 2) | 90.0 (step 0) | 90.0 (step 0) | 40.0 | 2 |" in out


RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "forced_collapse" / "metrics.jsonl"


def test_the_recorded_forced_collapse_run_warns_at_step_1():
    # tests/e2e/test_sample_view_e2e.py::test_forced_collapse_prints_the_format_warning (marker slow): SRPO on the
    # tiny task at actor lr 1.0, validated on 16 prompts before and after its one step; its console metrics,
    # recorded (the validation keys, reward, route fraction, grad norm, the mass gap and the trainer's warning
    # metrics)
    steps = read_jsonl(RECORDED)
    key = "val-aux/synthetic/format_ok/mean@1"  # the name verl 0.9.1 gives the verifier's format_ok
    assert C.format_rate_keys(steps[0]) == {"synthetic": key}
    assert (steps[0][key], steps[1][key]) == (1.0, 0.0)
    assert C.replay(0.2, steps) == [(1, "[srpo] WARNING: validation format rate fell from 1.000 (step 0) to 0.000 "
                                        "(step 1), more than srpo.format_drop_warn=0.2")]
    # what the trainer logged then equals the replay
    watch = C.FormatDropWatch(0.2)
    for step in (0, 1):
        metrics, _ = watch.update(step, steps[step])
        assert metrics == {C.DROP_METRIC: steps[step][C.DROP_METRIC], C.WARN_METRIC: steps[step][C.WARN_METRIC]}
    assert C.replay(None, steps) == []


def test_the_trainer_validation_hook_prints_and_logs_the_warning(monkeypatch, capsys):
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    from srpo_verl.verl_ext.trainer import SRPOTrainer

    steps = read_jsonl(RECORDED)
    validations = iter([steps[0], steps[1]])
    monkeypatch.setattr(PPOTrainerSync, "_validate", lambda self: dict(next(validations)))
    trainer = SRPOTrainer.__new__(SRPOTrainer)  # the hook needs only the watch and the step
    trainer._format_watch = C.FormatDropWatch(0.2)
    trainer.global_steps = 0
    first = trainer._validate()
    assert first[C.WARN_METRIC] == 0.0 and capsys.readouterr().out == ""
    trainer.global_steps = 1
    second = trainer._validate()
    assert second[C.WARN_METRIC] == 1.0 and second["val-core/synthetic/acc/mean@1"] == 0.0
    assert capsys.readouterr().out == ("[srpo] WARNING: validation format rate fell from 1.000 (step 0) to 0.000 "
                                       "(step 1), more than srpo.format_drop_warn=0.2\n")
