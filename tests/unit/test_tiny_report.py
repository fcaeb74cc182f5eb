"""Quickstart console progress and end-of-run table/plot (srpo_verl.tiny.progress, srpo_verl.tiny.report)."""

import json
import sys

import pytest

from srpo_verl.tiny.progress import JsonlFollower, progress_bar, run_with_progress, step_line
from srpo_verl.tiny.report import headline, main as report_main, render_table, step_rows, validation_accuracy_key

VAL = "val-core/synthetic/acc/mean@1"
STEPS = {
    0: {VAL: 0.25},
    1: {"critic/score/mean": 0.2, "timing_s/step": 3.0, "training/rollout_probs_diff_mean": 1e-9},
    2: {"critic/score/mean": 0.4, "timing_s/step": 2.0, "training/rollout_probs_diff_mean": 2e-9, VAL: 0.5},
}


def test_step_rows_pick_reward_val_and_timing():
    rows = step_rows(STEPS)
    assert [(r.step, r.reward, r.val_acc, r.seconds) for r in rows] == [
        (0, None, 0.25, None), (1, 0.2, None, 3.0), (2, 0.4, 0.5, 2.0)]
    assert rows[2].probs_diff == 2e-9 and rows[2].sdpo_fraction is None


def test_validation_key_is_found_and_ambiguity_raises():
    assert validation_accuracy_key(STEPS) == VAL
    assert validation_accuracy_key({1: {"critic/score/mean": 0.1}}) is None
    with pytest.raises(ValueError, match="several validation"):
        validation_accuracy_key({1: {VAL: 0.1, "val-core/other/acc/mean@4": 0.2}})


def test_table_and_headline():
    rows = step_rows(STEPS)
    assert render_table(rows).splitlines() == [
        "| step | train reward | val acc | s/step | probs diff |",
        "|---:|---:|---:|---:|---:|",
        "| 0 | - | 0.250 | - | - |",
        "| 1 | 0.200 | - | 3.0 | 1.0e-09 |",
        "| 2 | 0.400 | 0.500 | 2.0 | 2.0e-09 |",
    ]
    # mean of the first/last min(5, 2) rewards: 0.3 both; val from step 0 to step 2; 2.5 s/step
    assert headline(rows) == ("train reward 0.300 (first 2 steps) -> 0.300 (last 2); val acc 0.250 (step 0) -> "
                              "0.500 (step 2); 2.5 s/step")
    sdpo = step_rows({3: {"critic/score/mean": 0.5, "srpo/route/sdpo_frac": 0.25}})
    assert render_table(sdpo).splitlines()[2] == "| 3 | 0.500 | - | - | - | 0.25 |"
    gap = step_rows({3: {"critic/score/mean": 0.5, "srpo/route/sdpo_frac": 0.25, "srpo/topk/mass_gap": 0.0118}})
    assert render_table(gap).splitlines()[0].endswith("| SDPO-routed | mass gap |")
    assert render_table(gap).splitlines()[2] == "| 3 | 0.500 | - | - | - | 0.25 | 0.012 |"


def test_validation_format_rate_sits_next_to_accuracy():
    fmt = "val-aux/synthetic/format_ok/mean@1"
    steps = {0: {VAL: 0.25, fmt: 0.75}, 1: {"critic/score/mean": 0.2, "timing_s/step": 3.0},
             2: {"critic/score/mean": 0.4, VAL: 0.5, fmt: 0.25}}
    rows = step_rows(steps)
    assert [r.val_format for r in rows] == [0.75, None, 0.25]
    assert render_table(rows).splitlines()[0] == "| step | train reward | val acc | val format | s/step | probs diff |"
    assert render_table(rows).splitlines()[4] == "| 2 | 0.400 | 0.500 | 0.250 | - | - |"
    assert "val format 0.750 (step 0) -> 0.250 (step 2)" in headline(rows)
    assert step_line({"step": 2, "data": steps[2]}, 20) == (
        "step   2/20 | reward 0.400 | val acc 0.500 | val format 0.250")
    # the key of the accuracy's source and N only (another source's or another N's format rate is not shown)
    assert step_rows({0: {VAL: 0.5, "val-aux/synthetic/format_ok/mean@4": 0.9}})[0].val_format is None


def test_report_cli_writes_table_and_png(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in STEPS.items()))
    assert report_main(["--metrics", str(metrics), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 2 | 0.400 | 0.500 |" in (tmp_path / "out" / "summary.md").read_text()
    assert report_main(["--metrics", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 1


def test_follower_returns_only_complete_new_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    follower = JsonlFollower(path)
    assert follower.new_records() == []  # not created yet
    path.write_bytes(b'{"step": 1, "data": {}}\n{"step": 2, "da')
    assert follower.new_records() == [{"step": 1, "data": {}}]
    with path.open("ab") as handle:
        handle.write(b'ta": {}}\n')
    assert follower.new_records() == [{"step": 2, "data": {}}]
    assert follower.new_records() == []


def test_step_line_and_bar():
    record = {"step": 2, "data": STEPS[2]}
    assert step_line(record, 20) == "step   2/20 | reward 0.400 | val acc 0.500 | 2.0 s/step | probs diff 2.0e-09"
    assert progress_bar(5, 20, 83.0, width=10) == "[##........] 5/20 steps  1m23s  (training)"
    assert progress_bar(0, 20, 5.0, width=4) == "[....] 0/20 steps  0m05s  (starting verl/Ray)"


def test_run_with_progress_follows_metrics_and_reports_failure(tmp_path, capsys):
    metrics, log = tmp_path / "m.jsonl", tmp_path / "run.log"
    writer = ("import json, sys; f = open(sys.argv[1], 'w'); print('verl noise');"
              "[f.write(json.dumps({'step': s, 'data': {'critic/score/mean': s / 10}}) + '\\n') for s in (1, 2)];"
              "f.close(); sys.exit(int(sys.argv[2]))")
    assert run_with_progress([sys.executable, "-c", writer, str(metrics), "0"], metrics, log, 2, poll_s=0.05) == 0
    out = capsys.readouterr().out
    assert "step   1/2 | reward 0.100" in out and "step   2/2 | reward 0.200" in out
    assert "2/2 steps" in out and "verl noise" not in out and "verl noise" in log.read_text()
    assert run_with_progress([sys.executable, "-c", writer, str(metrics), "3"], metrics, log, 2, poll_s=0.05) == 3
    assert "failed with status 3" in capsys.readouterr().err
