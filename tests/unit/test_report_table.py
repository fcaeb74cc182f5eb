"""Table 1 from synthetic verl logs with known best values (srpo_verl.report.logs/table/plots/cli).

The synthetic runs are built so that every window boundary matters: a higher validation just outside a window
must not count, checkpoint-save seconds must be subtracted (otherwise step 180 leaves the 5h window) and validation
time must be ignored.
"""

import json
import pprint

import numpy as np
import pytest

from srpo_verl.report import cli, logs, table

VAL = "val-core/sciknoweval/acc/mean@16"


def _metrics(n_steps, step_seconds, val, saves=(), save_seconds=30.0, extra=None):
    """{step: metrics} as verl logs them: timing_s/step includes the save, validation is timed separately."""
    steps = {}
    if 0 in val:
        steps[0] = {VAL: val[0]}
    for k in range(1, n_steps + 1):
        m = {"timing_s/step": step_seconds + (save_seconds if k in saves else 0.0), "response_length/mean": 300.0 - k,
             "training/global_step": float(k)}
        if k in saves:
            m["timing_s/save_checkpoint"] = save_seconds
        if k in val:
            m[VAL] = val[k]
            m["timing_s/testing"] = 200.0
        if extra:
            m.update(extra(k))
        steps[k] = m
    return steps


def _write_jsonl(path, steps):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for step, data in sorted(steps.items()):
            handle.write(json.dumps({"step": step, "data": data}) + "\n")


def _write_console(path, steps):
    """verl's concat_dict_to_str format with numpy values, behind a Ray actor prefix, amid other output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["(TaskRunner pid=4242) Training Progress:   0%|          | 0/60", "some unrelated line: 1.0"]
    for step, data in sorted(steps.items()):
        pairs = [f"step:{step}"] + [f"{k}:{pprint.pformat(np.float64(v))}" for k, v in data.items()]
        lines.append("(TaskRunner pid=4242) " + " - ".join(pairs))
    path.write_text("\n".join(lines) + "\n")


def _write_tensorboard(directory, steps):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(directory))
    for step, data in sorted(steps.items()):
        for key, value in data.items():
            writer.add_scalar(key, value, step)
    writer.close()


def _routes(k):
    return {"srpo/route/sdpo_frac": 0.4 - k / 2000, "srpo/route/grpo_frac": 0.6 + k / 2000,
            "srpo/route/no_demo_frac": 0.05, "actor/srpo/teacher/entropy_mean": 0.3 + k / 1000}


SRPO_CHEM_VAL = {0: 0.411, **{k: 0.5 for k in range(5, 401, 5)},
                 35: 0.692, 40: 0.60,       # 1h = 36 steps at 100 s: step 40 is outside
                 180: 0.818, 185: 0.70,     # 5h = 180 steps, only once the saves are subtracted
                 360: 0.830, 365: 0.99}     # 10h = 360 steps


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs") / "qwen3_8b"
    _write_jsonl(root / "srpo" / "chemistry" / "metrics_20260101-000000.jsonl",
                 _metrics(400, 100.0, SRPO_CHEM_VAL, saves=range(50, 401, 50), extra=_routes))
    _write_console(root / "grpo" / "chemistry" / "console_20260101-000000.log",
                   _metrics(60, 80.0, {45: 0.621, 50: 0.95, 60: 0.90}))
    _write_tensorboard(root / "sdpo" / "chemistry" / "tensorboard",
                       _metrics(31, 120.0, {0: 0.411, 30: 0.716, 31: 0.806}))
    # a short run split over two launches (resume): the second file repeats step 10 and wins
    physics = _metrics(10, 100.0, {0: 0.587, 5: 0.60, 10: 0.1})
    _write_jsonl(root / "srpo" / "physics" / "metrics_20260101-000000.jsonl", physics)
    _write_jsonl(root / "srpo" / "physics" / "metrics_20260102-000000.jsonl", {10: {**physics[10], VAL: 0.696}})
    return root


def test_training_seconds_subtracts_saves_and_ignores_validation(runs_root):
    run = logs.load_run(runs_root / "srpo" / "chemistry")
    seconds = table.training_seconds(run, "srpo")
    assert seconds[1] == 100.0 and seconds[36] == 3600.0 and seconds[180] == 18000.0 and seconds[400] == 40000.0
    assert table.mean_step_seconds_within(seconds, 3600.0) == 100.0


def test_readers_agree_on_values(runs_root):
    console = logs.load_run(runs_root / "grpo" / "chemistry")
    assert console.format == "console" and console.series(VAL) == {45: 0.621, 50: 0.95, 60: 0.90}
    assert console.steps[7]["timing_s/step"] == 80.0 and "some unrelated line" not in console.keys()
    board = logs.load_run(runs_root / "sdpo" / "chemistry")
    assert board.format == "tensorboard"
    assert board.series(VAL) == pytest.approx({0: 0.411, 30: 0.716, 31: 0.806})
    resumed = logs.load_run(runs_root / "srpo" / "physics")
    assert resumed.format == "jsonl" and len(resumed.sources) == 2 and resumed.series(VAL)[10] == 0.696


@pytest.mark.parametrize("text, expected", [("0.5", 0.5), ("np.float64(0.25)", 0.25), ("np.int64(3)", 3.0),
                                            ("-1.5e-05", -1.5e-05), ("True", 1.0), ("'abc'", None), ("[1]", None)])
def test_parse_console_value(text, expected):
    assert logs.parse_console_value(text) == expected


def test_best_values_by_time_window(runs_root):
    entries = table.load_entries(table.discover_runs(runs_root))
    assert [(e.method, e.task) for e in entries] == [("grpo", "chemistry"), ("sdpo", "chemistry"),
                                                     ("srpo", "chemistry"), ("srpo", "physics")]
    result = table.build_table(entries, table.parse_time_windows("1h,5h,10h"), "time")
    assert result.methods == ["grpo", "sdpo", "srpo"] and result.tasks == ["chemistry", "physics"]
    assert result.cells["srpo"]["chemistry"] == [0.692, 0.818, 0.830]
    assert result.cells["grpo"]["chemistry"] == [0.621, 0.95, 0.95]   # 45 × 80 s = 1h exactly: inclusive
    assert result.cells["sdpo"]["chemistry"] == pytest.approx([0.716, 0.806, 0.806])
    assert result.cells["srpo"]["physics"] == [0.696, 0.696, 0.696]
    assert result.base == pytest.approx({"chemistry": 0.411, "physics": 0.587})
    by_step = table.build_table(entries, table.parse_step_windows("35,180,365"), "step")
    assert by_step.cells["srpo"]["chemistry"] == [0.692, 0.818, 0.99]


def test_markdown_table_prints_exactly_the_known_numbers(runs_root, capsys, tmp_path):
    png = tmp_path / "curves.png"
    assert cli.report_main(["--root", str(runs_root), "--step-windows", "35,180,365", "--plots", str(png)]) == 0
    out = capsys.readouterr().out
    assert "| method | Chem 1h/5h/10h | Phys 1h/5h/10h | Avg 1h/5h/10h |" in out
    assert "| base | 41.1 | 58.7 | 49.9 |" in out
    assert "| grpo | 62.1/95.0/95.0 | – | 62.1/95.0/95.0 |" in out
    assert "| sdpo | 71.6/80.6/80.6 | – | 71.6/80.6/80.6 |" in out
    assert "| srpo | 69.2/81.8/83.0 | 69.6/69.6/69.6 | 69.4/75.7/76.3 |" in out
    assert "note: grpo Avg 1h over 1 of 2 tasks" in out
    assert "| method | Chem 35st/180st/365st | Phys 35st/180st/365st | Avg 35st/180st/365st |" in out
    assert "| srpo | 69.2/81.8/99.0 | 69.6/69.6/69.6 | 69.4/75.7/84.3 |" in out
    # s/step within 1h: grpo 80, sdpo 120, srpo (100 + 100)/2 tasks
    assert "| grpo | 80.0 | 80.0 | 80.0 |" in out and "| sdpo | 120.0 | 120.0 | 120.0 |" in out
    assert "| srpo | 100.0 | 100.0 | 100.0 |" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_short_runs_leave_empty_cells(tmp_path, capsys):
    _write_jsonl(tmp_path / "r.jsonl", _metrics(3, 10.0, {0: 0.3, 2: 0.4}))
    _write_jsonl(tmp_path / "none.jsonl", _metrics(1, 10.0, {0: 0.3}))
    args = ["--run", f"srpo:tiny={tmp_path / 'r.jsonl'}", "--run", f"grpo:tiny={tmp_path / 'none.jsonl'}",
            "--windows", "15s,30s", "--step-windows", "1,3"]
    assert cli.report_main(args) == 0
    out = capsys.readouterr().out
    assert "| grpo | –/– | –/– |" in out          # only a step-0 validation: no trained cell
    assert "| srpo | –/40.0 | –/40.0 |" in out     # step 2 ends at 20 s
    assert "| base | 30.0 | 30.0 |" in out


def test_json_and_csv_records(runs_root, capsys):
    assert cli.report_main(["--root", str(runs_root), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    cell = [r for r in records if r["method"] == "srpo" and r["task"] == "chemistry" and r["window"] == "5h"]
    assert cell == [{"method": "srpo", "task": "chemistry", "window": "5h", "axis": "time", "value": 0.818}]
    assert cli.report_main(["--root", str(runs_root), "--format", "csv"]) == 0
    assert "srpo,avg,10h,time,0.763000" in capsys.readouterr().out


def test_errors_name_the_run_and_problem(tmp_path, capsys):
    gap = _metrics(4, 10.0, {2: 0.5})
    del gap[3]
    _write_jsonl(tmp_path / "gap.jsonl", gap)
    assert cli.report_main(["--run", f"srpo:x={tmp_path / 'gap.jsonl'}"]) == 1
    assert "training step 3 is missing from the log (next logged: 4)" in capsys.readouterr().err
    untimed = _metrics(2, 10.0, {2: 0.5})
    del untimed[2]["timing_s/step"]
    _write_jsonl(tmp_path / "untimed.jsonl", untimed)
    assert cli.report_main(["--run", f"srpo:x={tmp_path / 'untimed.jsonl'}"]) == 1
    assert "step 2 has no timing_s/step" in capsys.readouterr().err
    _write_jsonl(tmp_path / "noval.jsonl", _metrics(2, 10.0, {}))
    assert cli.report_main(["--run", f"srpo:x={tmp_path / 'noval.jsonl'}"]) == 1
    assert "no validation accuracy keys" in capsys.readouterr().err
    two = _metrics(2, 10.0, {2: 0.5})
    two[2]["val-core/tooluse/acc/mean@16"] = 0.1
    _write_jsonl(tmp_path / "two.jsonl", two)
    assert cli.report_main(["--run", f"srpo:x={tmp_path / 'two.jsonl'}"]) == 1
    assert "--val-source" in capsys.readouterr().err
    assert cli.report_main(["--run", f"srpo:x={tmp_path / 'two.jsonl'}", "--val-source", "tooluse",
                            "--windows", "1h", "--step-windows", "2"]) == 0
    assert "| srpo | 10.0 | 10.0 |" in capsys.readouterr().out
    dup = f"srpo:x={tmp_path / 'two.jsonl'}"
    assert cli.report_main(["--run", dup, "--run", dup, "--val-source", "tooluse"]) == 1
    assert "two runs for method srpo on task x" in capsys.readouterr().err
    assert cli.report_main(["--run", "no-equals-sign"]) == 1
    assert "expected METHOD:TASK=PATH" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"step": 1, "data": {"a": 1}}\n{"step": "x", "data": {}}\n')
    assert cli.report_main(["--run", f"srpo:x={tmp_path / 'bad.jsonl'}"]) == 1
    assert "bad.jsonl:2: 'step' is 'x'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="time window '1d'"):
        table.parse_time_windows("1h,1d")


# Excerpts (whole key:value pairs, in order, others elided) of real verl 0.9.1 console lines from a CPU tiny run of
# srpo_verl.main: Ray's coloured actor prefix, numpy reprs, and `training/global_step:N` inside the line.
REAL_CONSOLE = (
    "\x1b[36m(TaskRunnerV1 pid=22050)\x1b[0m step:0 - val-core/synthetic/acc/mean@4:np.float64(0.875) - "
    "val-core/synthetic/acc/best@4/mean:np.float64(0.875)\n"
    "\x1b[36m(TaskRunnerV1 pid=22050)\x1b[0m step:1 - global_seqlen/min:1472.0 - actor/entropy:5.686483383178711 - "
    "training/rollout_probs_diff_max:2.3283064365386963e-09 - timing_s/step:8.2 - training/global_step:1 - "
    "training/epoch:0\n"
    "\x1b[36m(TaskRunnerV1 pid=22050)\x1b[0m step:2 - global_seqlen/min:1472.0 - "
    "val-core/synthetic/acc/mean@4:np.float64(0.0625) - timing_s/step:5.023700897998424 - "
    "timing_s/testing:7.6915183090004575 - training/global_step:2 - training/epoch:0\n"
)


def test_real_verl_console_lines(tmp_path, capsys):
    log = tmp_path / "console_0.log"
    log.write_text(REAL_CONSOLE)
    run = logs.load_run(log)
    assert sorted(run.steps) == [0, 1, 2]
    assert run.steps[1]["training/rollout_probs_diff_max"] == 2.3283064365386963e-09
    assert run.series("val-core/synthetic/acc/mean@4") == {0: 0.875, 2: 0.0625}
    assert cli.report_main(["--run", f"grpo:tiny={log}", "--windows", "10s,14s", "--step-windows", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "| base | 87.5 | 87.5 |" in out
    assert "| grpo | –/6.2 | –/6.2 |" in out      # step 2 ends at 8.2 + 5.02 = 13.2 s of training
    # a wrapped line continuing with `training/global_step:N - ...` is not a step record of its own
    log.write_text("  - training/global_step:3 - timing_s/step:1.0\n")
    assert logs.load_run(log).steps == {}
