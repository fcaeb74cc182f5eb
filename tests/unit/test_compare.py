"""The toy comparison harness without a trainer: seed aggregation, budget table, figure (srpo_verl.report.compare)
and the run plan, learning rates, quickstart knobs and finished markers (srpo_verl.bench.compare)."""

import json
import math
from pathlib import Path

import pytest

from srpo_verl.bench import compare as bench
from srpo_verl.report import compare
from srpo_verl.report.table import Window

VAL = "val-core/synthetic/acc/mean@4"


def _run(vals, step_s, sdpo=None, entropy=None, tokens=None, steps=4):
    """{step: metrics}: validation at the keys of ``vals``, ``step_s`` seconds per step, optional SRPO metrics."""
    out = {0: {VAL: vals[0]}} if 0 in vals else {}
    for k in range(1, steps + 1):
        m = {"timing_s/step": step_s, "critic/score/mean": 0.1 * k, "response_length/mean": 10.0 + k}
        if k in vals:
            m[VAL] = vals[k]
        if sdpo is not None:
            m["actor/srpo/route/sdpo_frac"] = sdpo[k - 1]
        if entropy is not None:
            m["srpo/teacher/entropy_mean"] = entropy[k - 1]
        if tokens is not None:
            m["srpo/teacher/tokens"] = tokens[k - 1]
            m["timing_s/srpo_teacher"] = 0.01 * tokens[k - 1]
        out[k] = m
    return out


def test_seed_curve_mean_and_population_std_per_step():
    curve = compare.seed_curve([{0: 0.2, 2: 0.4}, {0: 0.4, 2: 0.8, 4: 0.9}])
    assert curve.steps == [0, 2, 4]
    assert curve.mean == pytest.approx([0.3, 0.6, 0.9])
    assert curve.std == pytest.approx([0.1, 0.2, 0.0])
    assert curve.n == [2, 2, 1]


def test_teacher_entropy_dropped_where_nothing_was_routed_and_actor_prefix_found():
    steps = _run({0: 0.5}, 1.0, sdpo=[0.5, 0.0, 0.25, 0.0], entropy=[1.5, 0.0, 2.5, 0.0])
    assert compare.metric_series(steps, compare.TEACHER_ENTROPY_KEY) == {1: 1.5, 3: 2.5}
    assert compare.metric_series(steps, compare.SDPO_FRACTION_KEY) == {1: 0.5, 2: 0.0, 3: 0.25, 4: 0.0}
    assert compare.metric_series(steps, None) == {0: 0.5}
    assert compare.metric_series({1: {"critic/score/mean": 1.0}}, None) == {}  # never validated


def test_method_row_budgets_per_seed_then_mean_std():
    # seed a: 2 s/step, best 0.6 at step 2 then 0.9 at step 4; seed b: 4 s/step, 0.5 at step 2, 0.7 at step 4
    a = _run({0: 0.1, 2: 0.6, 4: 0.9}, 2.0, tokens=[100, 200, 300, 400])
    b = _run({0: 0.3, 2: 0.5, 4: 0.7}, 4.0, tokens=[100, 200, 300, 400])
    row = compare.method_row("srpo", [a, b], [Window("2st", 2), Window("4st", 4)], [Window("8s", 8)])
    assert row.base.mean == pytest.approx(0.2) and row.base.std == pytest.approx(0.1)
    assert row.by_step[0].mean == pytest.approx(0.55) and row.by_step[0].std == pytest.approx(0.05)
    assert row.by_step[1].mean == pytest.approx(0.8)
    # 8 s of training: seed a reached step 4 (0.9), seed b step 2 (0.5)
    assert row.by_time[0].mean == pytest.approx(0.7) and row.by_time[0].n == 2
    assert row.step_seconds.mean == pytest.approx(3.0)  # steps >= 2
    assert row.teacher_tokens.mean == pytest.approx(250.0)
    assert row.teacher_seconds.mean == pytest.approx(3.0)  # steps >= 2: 2, 3, 4 s
    assert row.final_step.mean == 4.0
    # a window before any validation: no value, rendered as a dash
    early = compare.method_row("grpo", [_run({0: 0.1, 2: 0.6}, 2.0)], [Window("1st", 1)], [])
    assert early.by_step[0].mean is None and early.by_step[0].render() == "–"
    assert early.teacher_tokens.mean == 0.0  # GRPO has no teacher


def test_final_validation_and_area_under_the_curve():
    # validations 0.2 @0, 0.6 @2, 0.4 @4: trapezoids (0.8 + 1.0) / 4 = 0.45; final 0.4, peak 0.6
    assert compare.area_under_curve({0: 0.2, 2: 0.6, 4: 0.4}) == pytest.approx(0.45)
    assert compare.area_under_curve({0: 0.2, 10: 0.2}) == pytest.approx(0.2)
    assert compare.area_under_curve({3: 0.5}) is None
    a = _run({0: 0.2, 2: 0.6, 4: 0.4}, 1.0)
    b = _run({0: 0.2, 2: 0.8, 4: 0.8}, 1.0)  # AUC (1.0 + 1.6) / 4 = 0.65
    row = compare.method_row("sdpo", [a, b], [Window("4st", 4)], [])
    assert row.final_val.mean == pytest.approx(0.6) and row.final_val.std == pytest.approx(0.2)
    assert row.auc.mean == pytest.approx(0.55) and row.auc.std == pytest.approx(0.1)
    assert row.by_step[0].mean == pytest.approx(0.7)  # the peak within all steps
    never = compare.method_row("grpo", [_run({}, 1.0)], [Window("4st", 4)], [])
    assert never.final_val.mean is None and never.auc.mean is None


def test_mass_gap_kept_on_routed_steps_only():
    steps = _run({0: 0.5}, 1.0, sdpo=[0.5, 0.0, 0.25, 0.0])
    for k, gap in zip(range(1, 5), (0.3, 0.0, 0.1, 0.0)):
        steps[k]["actor/srpo/topk/mass_gap"] = gap
    assert compare.metric_series(steps, compare.MASS_GAP_KEY) == {1: 0.3, 3: 0.1}
    assert any(key == compare.MASS_GAP_KEY for _, key, _ in compare.PANELS)


def test_cell_render_marks_missing_seeds():
    assert compare.Cell.of_values([0.5, None]).render(100.0) == "50.0 ± 0.0 (1/2)"
    assert compare.Cell.of_values([0.25, 0.75]).render(100.0) == "50.0 ± 25.0"


def test_default_windows():
    runs = {"grpo": [_run({}, 2.0), _run({}, 4.0)], "srpo": [_run({}, 10.0)]}
    # grpo's mean total is (8 + 16) / 2 = 12 s, the shortest
    assert [(w.label, w.limit) for w in compare.default_time_windows(runs)] == [("3s", 3.0), ("6s", 6.0),
                                                                                ("12s", 12.0)]
    assert [w.label for w in compare.default_step_windows(40)] == ["10st", "20st", "40st"]
    assert [w.label for w in compare.default_step_windows(2)] == ["1st", "2st"]


def test_table_and_figure(tmp_path):
    runs = {"srpo": [_run({0: 0.1, 4: 0.9}, 2.0, sdpo=[0.5] * 4, entropy=[1.0] * 4, tokens=[10] * 4)],
            "grpo": [_run({0: 0.1, 4: 0.4}, 1.0)]}
    rows = compare.comparison_rows(runs, [Window("4st", 4)], [Window("4s", 4)])
    assert [r.method for r in rows] == ["grpo", "srpo"]  # paper order
    text = compare.render_table(rows, [Window("4st", 4)], [Window("4s", 4)])
    grpo_line = next(line for line in text.splitlines() if line.startswith("| grpo"))
    # final 40; AUC: (0.1 + 0.4) / 2 over steps 0-4
    assert grpo_line == ("| grpo | 1 | 4 ± 0 | 10.0 ± 0.0 | 40.0 ± 0.0 | 40.0 ± 0.0 | 40.0 ± 0.0 | 25.0 ± 0.0 | "
                         "1.00 ± 0.00 | 0.000 ± 0.000 | 0 ± 0 |")
    srpo_line = next(line for line in text.splitlines() if line.startswith("| srpo"))
    assert "| 90.0 ± 0.0 | – |" in srpo_line  # srpo's step-4 validation lies after 4 s (8 s)
    png = compare.plot_comparison(runs, tmp_path / "c.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_quickstart_knobs_come_from_the_package():
    from srpo_verl.tiny.defaults import QUICKSTART_DEFAULTS

    knobs = bench.quickstart_defaults()
    assert knobs == QUICKSTART_DEFAULTS
    assert (knobs["STEPS"], knobs["BATCH"], knobs["N"], knobs["LR"], knobs["TEST_FREQ"], knobs["VAL_N"],
            knobs["LEVEL"]) == ("40", "16", "4", "2e-4", "20", "4", "quickstart")
    args = bench.parse_args([])
    assert (args.steps, args.batch, args.n, args.srpo_lr, args.test_freq, args.val_n, args.level) == \
        (40, 16, 4, 2e-4, 20, 4, "quickstart")
    assert args.assets.endswith("runs/tiny_assets_seed{seed}")
    long = bench.parse_args(["--level", "long"])
    assert long.assets.endswith("runs/tiny_assets_{level}_seed{seed}")
    spec = bench.plan_runs(["srpo"], [3], 1e-4, 2, 8, 4, 1, 1, [], "long")[0]
    assert spec.level == "long" and spec.env(Path("a"), Path("r"))["LEVEL"] == "long"
    assert bench.assets_dir(long.assets, spec).name == "tiny_assets_long_seed3"
    with pytest.raises(SystemExit):
        bench.parse_args(["--level", "nope"])


def test_paper_lr_ratios():
    assert bench.method_lr("srpo", 2e-4) == pytest.approx(2e-4)
    assert bench.method_lr("grpo", 2e-4) == pytest.approx(4e-5)
    assert bench.method_lr("sdpo", 2e-4) == pytest.approx(4e-4)
    assert bench.method_lr("sdpo_correct_only", 2e-4) == pytest.approx(4e-4)
    assert bench.method_lr("adv_mix", 2e-4) == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="method 'ppo'"):
        bench.method_lr("ppo", 1e-4)


def test_plan_env_and_overrides(tmp_path):
    specs = bench.plan_runs(["grpo", "srpo_no_dw"], [0, 1], 1e-4, 3, 8, 4, 1, 1, ["data.val_max_samples=8"])
    assert [(s.method, s.seed) for s in specs] == [("grpo", 0), ("srpo_no_dw", 0), ("grpo", 1), ("srpo_no_dw", 1)]
    grpo, ablation = specs[0], specs[1]
    assert grpo.env(tmp_path / "a", tmp_path / "r")["ALGO"] == "grpo"
    assert grpo.env(tmp_path / "a", tmp_path / "r")["LR"] == "2e-05"
    assert not any(o.startswith("srpo.") for o in grpo.hydra_overrides(tmp_path))
    env = ablation.env(tmp_path / "a", tmp_path / "r")
    assert (env["ALGO"], env["SEED"], env["SKIP_SETUP"], env["RUN_DIR"]) == ("srpo", "0", "1", str(tmp_path / "r"))
    extra = ablation.hydra_overrides(tmp_path)
    assert extra[0] == "srpo.method=srpo_no_dw" and extra[-1] == "data.val_max_samples=8"
    assert f"srpo.route_dump_dir={tmp_path / 'routes'}" in extra


def test_finished_marker_must_record_the_same_spec(tmp_path):
    spec = bench.plan_runs(["srpo"], [0], 1e-4, 3, 8, 4, 1, 1, [])[0]
    run_dir = bench.run_dir_of(tmp_path, spec)
    assert run_dir == tmp_path / "srpo" / "seed0" and not bench.is_finished(run_dir, spec)
    run_dir.mkdir(parents=True)
    (run_dir / bench.MARKER).write_text(json.dumps({"spec": bench.asdict(spec)}))
    assert bench.is_finished(run_dir, spec)
    longer = bench.plan_runs(["srpo"], [0], 1e-4, 4, 8, 4, 1, 1, [])[0]
    assert not bench.is_finished(run_dir, longer)
    (run_dir / bench.MARKER).write_text("{not json")
    assert not bench.is_finished(run_dir, spec)
    # the marker records the assets' manifest settings: runs on another toy are not reused
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "manifest.json").write_text(json.dumps({"settings": {"builder_version": 3, "seed": 0}}))
    (run_dir / bench.MARKER).write_text(json.dumps({"spec": bench.asdict(spec),
                                                    "assets": bench.assets_settings(assets)}))
    assert bench.is_finished(run_dir, spec, {"builder_version": 3, "seed": 0})
    assert not bench.is_finished(run_dir, spec, {"builder_version": 4, "seed": 0})


def test_last_logged_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert bench.last_logged_step(path) == 0
    path.write_text("".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in
                            [(0, {VAL: 0.1}), (1, {"critic/score/mean": 0.2}), (2, {"critic/score/mean": 0.3})]))
    assert bench.last_logged_step(path) == 2
    assert math.isfinite(compare.mean_std([1.0])[0])


def test_collect_reports_up_to_the_planned_steps(tmp_path):
    spec = bench.plan_runs(["srpo"], [0], 1e-4, 2, 8, 4, 1, 1, [])[0]
    run_dir = bench.run_dir_of(tmp_path, spec)
    run_dir.mkdir(parents=True)
    records = [{"step": s, "data": {VAL: 0.1 * s, "critic/score/mean": 0.5}} for s in range(5)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert sorted(bench.collect(tmp_path, [spec])["srpo"][0]) == [0, 1, 2]


def test_parse_args_rejects_bad_values():
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--", "not-an-override"])
    args = bench.parse_args(["--seeds", "3", "--", "data.val_max_samples=5"])
    assert args.seeds == [3] and args.overrides == ["data.val_max_samples=5"]


FAKE_QUICKSTART = r"""#!/usr/bin/env bash
# stands in for scripts/quickstart.sh: logs STEPS steps to $RUN_DIR/metrics.jsonl, one progress line each, sleeping
# $FAKE_SLEEP seconds after each (in a child process, as the trainer is one); the step-0 validation ($FAKE_VAL0)
# first unless an argument turns it off
set -e
if [[ " $* " != *" trainer.val_before_train=false "* ]]; then
    echo "{\"step\": 0, \"data\": {\"val-core/synthetic/acc/mean@4\": ${FAKE_VAL0:-0.25}}}" >> "$RUN_DIR/metrics.jsonl"
fi
for ((k = 1; k <= STEPS; k++)); do
    echo "{\"step\": $k, \"data\": {\"critic/score/mean\": 0.5, \"timing_s/step\": 1.0}}" >> "$RUN_DIR/metrics.jsonl"
    echo "step $k/$STEPS | reward 0.500"
    echo "noise that is not echoed"
    sleep "${FAKE_SLEEP:-0}" &
    wait $!
done
echo "[quickstart] args $*"
"""


@pytest.fixture
def fake_quickstart(tmp_path, monkeypatch):
    script = tmp_path / "quickstart.sh"
    script.write_text(FAKE_QUICKSTART)
    monkeypatch.setattr(bench, "QUICKSTART", script)
    monkeypatch.setattr(bench, "build_assets", lambda assets, seed, echo=print, level="quickstart": 0.0)
    return tmp_path


def test_run_all_finishes_skips_and_cuts(fake_quickstart, monkeypatch):
    out, lines = fake_quickstart / "out", []
    specs = bench.plan_runs(["grpo", "srpo"], [0], 1e-4, 2, 8, 4, 1, 1, [])
    results = bench.run_all(specs, out, str(fake_quickstart / "assets{seed}"), 60, 600, lines.append)
    assert [(r.status, r.last_step) for r in results] == [("finished", 2), ("finished", 2)]
    assert "[srpo seed0] step 2/2 | reward 0.500" in lines and not any("noise" in line for line in lines)
    assert f"srpo.route_dump_dir={(out / 'srpo' / 'seed0').resolve() / 'routes'}" in \
        (out / "srpo" / "seed0" / "quickstart.out").read_text()
    # grpo validated the start model; srpo did not, and its log has grpo's step-0 validation
    saved = json.loads((out / bench.START_VAL_DIR / "quickstart_seed0.json").read_text())
    assert saved["source"] == str(out / "grpo" / "seed0") and saved["metrics"] == {VAL: 0.25}
    assert "trainer.val_before_train=false" not in (out / "grpo" / "seed0" / "quickstart.out").read_text()
    assert "trainer.val_before_train=false" in (out / "srpo" / "seed0" / "quickstart.out").read_text()
    srpo_log = bench.read_jsonl(out / "srpo" / "seed0" / "metrics.jsonl")
    assert srpo_log[0] == {VAL: 0.25} and sorted(srpo_log) == [0, 1, 2]
    assert any("start model validated earlier" in line for line in lines)
    # a second invocation reruns nothing; a longer plan reruns from scratch
    again = bench.run_all(specs, out, "a", 60, 600, lines.append)
    assert [r.status for r in again] == ["skipped", "skipped"]
    # a run past its bound is killed (with its children) and reported cut at its last step; no marker
    monkeypatch.setenv("FAKE_SLEEP", "30")
    longer = bench.plan_runs(["srpo"], [0], 1e-4, 5, 8, 4, 1, 1, [])
    cut = bench.run_all(longer, out, "a", 3, 600, lines.append)[0]
    assert (cut.status, cut.last_step) == ("cut", 1) and cut.wall_s < 25
    assert not (out / "srpo" / "seed0" / bench.MARKER).exists()
    # no budget left: not started
    assert bench.run_all(longer, out, "a", 60, 10, lines.append)[0].status == "not started"


def test_start_validation_is_reused_only_for_the_same_model_and_validation(fake_quickstart, monkeypatch):
    out, assets = fake_quickstart / "out", fake_quickstart / "assets0"
    assets.mkdir()
    (assets / "manifest.json").write_text(json.dumps({"settings": {"builder_version": 4, "seed": 0}}))
    monkeypatch.setenv("FAKE_VAL0", "0.5")
    first = bench.plan_runs(["sdpo", "grpo"], [0], 1e-4, 1, 8, 4, 1, 1, [])
    bench.run_all(first, out, str(fake_quickstart / "assets{seed}"), 60, 600, lambda _: None)
    assert bench.read_jsonl(out / "grpo" / "seed0" / "metrics.jsonl")[0] == {VAL: 0.5}
    # another validation (VAL_N 2): the start model is validated again, and that becomes the saved one
    monkeypatch.setenv("FAKE_VAL0", "0.75")
    other = bench.plan_runs(["grpo"], [0], 1e-4, 1, 8, 4, 1, 2, [])
    assert bench.load_start_val(out, other[0], assets) is None
    bench.run_all(other, out, str(fake_quickstart / "assets{seed}"), 60, 600, lambda _: None)
    assert bench.read_jsonl(out / "grpo" / "seed0" / "metrics.jsonl")[0] == {VAL: 0.75}
    assert bench.load_start_val(out, other[0], assets)["metrics"] == {VAL: 0.75}
    # srpo.* overrides never change the step-0 validation: reused; any other override is another validation
    with_memory = bench.plan_runs(["srpo"], [0], 1e-4, 1, 8, 4, 1, 2, ["srpo.success_memory=true"])
    assert bench.load_start_val(out, with_memory[0], assets)["metrics"] == {VAL: 0.75}
    other_temperature = bench.plan_runs(["srpo"], [0], 1e-4, 1, 8, 4, 1, 2, ["actor_rollout_ref.rollout.temperature=0.5"])
    assert bench.load_start_val(out, other_temperature[0], assets) is None
    # other assets (a rebuilt model): not reused
    (assets / "manifest.json").write_text(json.dumps({"settings": {"builder_version": 5, "seed": 0}}))
    assert bench.load_start_val(out, other[0], assets) is None


def test_ray_startup_timeout_is_retried_once(fake_quickstart, monkeypatch):
    out, lines, calls = fake_quickstart / "out", [], []
    spec = bench.plan_runs(["srpo"], [0], 1e-4, 2, 8, 4, 1, 1, [])[0]

    def launch(spec, assets, run_dir, timeout, echo, extra=()):
        calls.append(timeout)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train.log").write_text(f"Exception: {bench.RAY_STARTUP_TIMEOUT} ...\n")
        return bench.RunResult(spec, "failed", 0, 1.0, 1)

    monkeypatch.setattr(bench, "launch", launch)
    assert bench.run_all([spec], out, "a", 60, 600, lines.append)[0].status == "failed"
    assert len(calls) == 2 and any("retrying once" in line for line in lines)
