"""The toy comparison harness: GRPO, SDPO, SRPO (and ablations) x seeds on the CPU quickstart's task.

    python scripts/bench/compare_methods.py --seeds 0 1 2 --steps 40 --budget-min 40 --out runs/compare

Each (method, seed) is one launch of ``scripts/quickstart.sh`` (the same command a user runs: the tiny assets of that
seed, ``python -m srpo_verl.main`` with the CPU backend, its per-step progress lines), one process at a time, with
ALGO / SEED / LR / STEPS / ... set in its environment and these Hydra overrides appended: ``srpo.method=<m>`` for the
ablations (ALGO covers grpo / sdpo / srpo only), ``trainer.rollout_data_dir`` (every step's samples, as JSONL) and
``srpo.route_dump_dir`` (every step's routes; not GRPO), plus the caller's own.

Layout: ``OUT/<method>/seed<S>/`` holds the run (metrics.jsonl, train.log, rollouts/, routes/, the quickstart's
summary.md and curves.png, quickstart.out = its console) and ``finished.json`` once it completed all its steps.
A run dir whose marker records the same settings and tiny assets (their manifest) is skipped (resumable); any other run dir is removed and the run
starts from scratch (the CPU configs save no checkpoints, so there is nothing to resume from). ``OUT/compare.png``,
``OUT/table.md`` and ``OUT/table.json`` are the report (``srpo_verl.report.compare``).

The start model of a seed is validated once: the first run of that seed validates it at step 0 (the quickstart's
``trainer.val_before_train=true``) and ``OUT/start_val/<level>_seed<S>.json`` keeps that record with what it depends
on (the assets' settings, VAL_N, the caller's overrides); every later run of the seed, whatever its method, runs with
``trainer.val_before_train=false`` and gets the saved record appended to its metrics.jsonl as its step 0 (so all
methods of a seed share one step-0 value). ``--level`` picks the tiny assets' level (``srpo_verl.tiny.build.LEVELS``).

Learning rates keep the paper's ratios GRPO : SRPO : SDPO = 1 : 5 : 10 (recipes/qwen3_8b: 1e-6, 5e-6, 1e-5; the
ablations take their family's: srpo_no_dw / adv_mix as SRPO, sdpo_* as SDPO), anchored at ``--srpo-lr`` (default:
the quickstart's LR). Nothing else differs between methods.

Time bounds: each run gets at most ``--run-timeout-min`` and the whole invocation ``--budget-min`` (asset builds
included); a run killed at a bound is reported as cut at its last logged step (its steps still enter the report,
the table's (n/m) says how many seeds a cell has), a run not started for lack of budget as not started. Runs go seed
by seed (all methods of seed 0 first), so a cut budget leaves every method with the same seeds. A run that failed
with Ray's node start-up timeout (a loaded host) is retried once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from srpo_verl.report import compare as report
from srpo_verl.report.logs import read_jsonl
from srpo_verl.report.table import parse_step_windows, parse_time_windows
from srpo_verl.tiny.defaults import QUICKSTART_DEFAULTS

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / "scripts" / "quickstart.sh"
MARKER = "finished.json"
# Learning rate relative to GRPO's (recipes/qwen3_8b/run_*.sh: grpo 1e-6, srpo / srpo_no_dw / adv_mix 5e-6,
# sdpo / sdpo_incorrect_only / sdpo_correct_only 1e-5).
LR_RATIO = {"grpo": 1.0, "sdpo": 10.0, "srpo": 5.0, "srpo_no_dw": 5.0, "adv_mix": 5.0, "sdpo_incorrect_only": 10.0,
            "sdpo_correct_only": 10.0}
DEFAULT_METHODS = ("grpo", "sdpo", "srpo")


def quickstart_defaults() -> dict[str, str]:
    """{VAR: default} of the quickstart's knobs (STEPS, SEED, LEVEL, BATCH, N, LR, TEST_FREQ, VAL_N, ...), from
    ``srpo_verl.tiny.defaults``, where the quickstart script reads them too."""
    return dict(QUICKSTART_DEFAULTS)


def method_lr(method: str, srpo_lr: float) -> float:
    """The toy learning rate of ``method``: ``srpo_lr`` x (paper lr of the method / paper lr of SRPO)."""
    if method not in LR_RATIO:
        raise ValueError(f"method {method!r}: expected one of {', '.join(LR_RATIO)}")
    return srpo_lr * LR_RATIO[method] / LR_RATIO["srpo"]


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one run; a finished run is reused only when its marker records the same spec."""

    method: str
    seed: int
    lr: float
    steps: int
    batch: int
    n: int
    test_freq: int
    val_n: int
    overrides: tuple[str, ...] = ()
    level: str = QUICKSTART_DEFAULTS["LEVEL"]

    def algo(self) -> str:
        """The quickstart's ALGO (grpo | sdpo | srpo); ablations run as their family plus ``srpo.method=``."""
        if self.method == "grpo":
            return "grpo"
        return "sdpo" if self.method.startswith("sdpo") else "srpo"

    def env(self, assets: Path, run_dir: Path) -> dict[str, str]:
        """The quickstart's knobs for this run (setup skipped: the harness runs inside the set-up .venv)."""
        return {"ALGO": self.algo(), "SEED": str(self.seed), "LR": f"{self.lr:.6g}", "STEPS": str(self.steps),
                "BATCH": str(self.batch), "N": str(self.n), "TEST_FREQ": str(self.test_freq),
                "VAL_N": str(self.val_n), "LEVEL": self.level, "ASSETS": str(assets), "RUN_DIR": str(run_dir),
                "SKIP_SETUP": "1"}

    def hydra_overrides(self, run_dir: Path) -> list[str]:
        """Overrides appended to the quickstart's command (later overrides of a key win in Hydra)."""
        extra = [] if self.method == self.algo() else [f"srpo.method={self.method}"]
        extra.append(f"trainer.rollout_data_dir={run_dir / 'rollouts'}")
        if self.method != "grpo":
            extra.append(f"srpo.route_dump_dir={run_dir / 'routes'}")
        return extra + list(self.overrides)


def plan_runs(methods: list[str], seeds: list[int], srpo_lr: float, steps: int, batch: int, n: int, test_freq: int,
              val_n: int, overrides: list[str], level: str = QUICKSTART_DEFAULTS["LEVEL"]) -> list[RunSpec]:
    """Seed-major order: every method of the first seed, then the next seed."""
    return [RunSpec(m, s, method_lr(m, srpo_lr), steps, batch, n, test_freq, val_n, tuple(overrides), level)
            for s in seeds for m in methods]


def run_dir_of(out: Path, spec: RunSpec) -> Path:
    return Path(out) / spec.method / f"seed{spec.seed}"


def assets_dir(template: str, spec: RunSpec) -> Path:
    """The tiny assets of ``spec``: ``template`` with ``{seed}`` and ``{level}`` filled in."""
    return Path(template.format(seed=spec.seed, level=spec.level))


def assets_settings(assets: Path) -> dict | None:
    """The ``settings`` of the tiny assets' manifest.json (builder version, seed, warm start, ...); None without one."""
    manifest = Path(assets) / "manifest.json"
    try:
        return json.loads(manifest.read_text()).get("settings")
    except (OSError, json.JSONDecodeError):
        return None


def is_finished(run_dir: Path, spec: RunSpec, assets: dict | None = None) -> bool:
    """True when ``run_dir`` has a finished marker recording exactly ``spec`` and the assets' settings ``assets``
    (so runs on an older toy, another builder version, are not reused)."""
    marker = Path(run_dir) / MARKER
    if not marker.exists():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    return recorded.get("spec") == json.loads(json.dumps(asdict(spec))) and recorded.get("assets") == assets


def last_logged_step(metrics: Path) -> int:
    """The last training step in a verl file-logger JSONL (0 when none: no file, or only the step-0 validation)."""
    if not Path(metrics).exists():
        return 0
    try:
        steps = read_jsonl(metrics)
    except ValueError:
        return 0
    trained = [s for s, m in steps.items() if s >= 1 and report.REWARD_KEY in m]
    return max(trained, default=0)


def kill_tree(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM a process and all its descendants (the trainer, Ray's processes), SIGKILL what is left after
    ``grace_s``."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@dataclass
class RunResult:
    """status: finished | failed | cut (killed at a time bound) | skipped (finished earlier) | not started."""

    spec: RunSpec
    status: str
    last_step: int = 0
    wall_s: float = 0.0
    rc: int | None = None
    note: str = ""


def _is_progress_line(line: str) -> bool:
    return line.startswith("step ") or line.startswith("[quickstart]")


def launch(spec: RunSpec, assets: Path, run_dir: Path, timeout_s: float, echo=print,
           extra_overrides: tuple[str, ...] = ()) -> RunResult:
    """Run the quickstart for ``spec`` into a fresh ``run_dir`` (removed first), at most ``timeout_s`` seconds;
    ``extra_overrides`` go after the spec's (e.g. ``trainer.val_before_train=false``).

    Its console goes to ``run_dir/quickstart.out``; its per-step lines are echoed with a ``[method seedS]`` prefix.
    """
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    prefix = f"[{spec.method} seed{spec.seed}] "
    command = ["bash", str(QUICKSTART), *spec.hydra_overrides(run_dir.resolve()), *extra_overrides]
    env = {**os.environ, **spec.env(Path(assets).resolve(), run_dir.resolve())}
    started = time.monotonic()
    with (run_dir / "quickstart.out").open("w") as console:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", start_new_session=True)

        def pump() -> None:
            for line in process.stdout:
                console.write(line)
                console.flush()
                if _is_progress_line(line):
                    echo(prefix + line.rstrip("\n"))

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc = process.wait(timeout=max(1.0, timeout_s))
            cut = False
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            rc = process.wait()
            cut = True
        except KeyboardInterrupt:
            kill_tree(process.pid)
            raise
        reader.join(timeout=30)
    wall = time.monotonic() - started
    last = last_logged_step(run_dir / "metrics.jsonl")
    if cut:
        return RunResult(spec, "cut", last, wall, rc, f"killed at the {timeout_s:.0f} s bound after step {last}")
    if rc != 0 or last != spec.steps:
        tail = "\n".join((run_dir / "quickstart.out").read_text(errors="replace").splitlines()[-25:])
        echo(f"{prefix}failed (exit {rc}, last step {last}/{spec.steps}); tail of {run_dir / 'quickstart.out'}:\n"
             f"{tail}")
        return RunResult(spec, "failed", last, wall, rc, f"exit {rc} after step {last}")
    (run_dir / MARKER).write_text(json.dumps({"spec": asdict(spec), "assets": assets_settings(assets),
                                              "wall_s": round(wall, 1), "rc": rc}, indent=1))
    return RunResult(spec, "finished", last, wall, rc)


START_VAL_DIR = "start_val"
NO_START_VAL = "trainer.val_before_train=false"


def start_val_key(spec: RunSpec, assets: Path) -> dict:
    """What the step-0 validation depends on: the start model (its assets' settings) and how it is validated. The
    method, lr, step count and ``srpo.*`` overrides do not enter: every method of a seed starts from the same model,
    and the step-0 validation generates with the actor before anything of the ``srpo:`` group has run."""
    overrides = [o for o in spec.overrides if not o.lstrip("+~").startswith("srpo.")]
    return json.loads(json.dumps({"assets": assets_settings(assets), "val_n": spec.val_n, "overrides": overrides}))


def start_val_path(out: Path, spec: RunSpec) -> Path:
    return Path(out) / START_VAL_DIR / f"{spec.level}_seed{spec.seed}.json"


def load_start_val(out: Path, spec: RunSpec, assets: Path) -> dict | None:
    """The saved step-0 validation of ``spec``'s start model ({"key", "source", "metrics"}), or None when there is
    none for exactly this model and validation."""
    path = start_val_path(out, spec)
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return saved if saved.get("key") == start_val_key(spec, assets) and saved.get("metrics") else None


def save_start_val(out: Path, spec: RunSpec, assets: Path, run_dir: Path) -> bool:
    """Save the step-0 validation logged in ``run_dir/metrics.jsonl`` as the start model's; False when the run
    logged none (cut before it)."""
    metrics = Path(run_dir) / "metrics.jsonl"
    try:
        step0 = read_jsonl(metrics).get(0, {})
    except (OSError, ValueError):
        return False
    if not any(key.startswith("val-") for key in step0):
        return False
    path = start_val_path(out, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": start_val_key(spec, assets), "source": str(run_dir), "metrics": step0},
                               indent=1))
    return True


def append_start_val(run_dir: Path, saved: dict) -> None:
    """Log the reused step-0 validation into ``run_dir/metrics.jsonl`` (a verl FileLogger record, with where it
    came from), so the run's log reads like one that validated its start model itself."""
    with (Path(run_dir) / "metrics.jsonl").open("a") as log:
        log.write(json.dumps({"step": 0, "data": saved["metrics"], "reused_from": saved["source"]}) + "\n")


RAY_STARTUP_TIMEOUT = "The current node timed out during startup"


def ray_startup_failed(run_dir: Path) -> bool:
    """True when the run's train.log shows Ray's node start-up timeout (a loaded host, not the run's fault)."""
    log = Path(run_dir) / "train.log"
    return log.exists() and RAY_STARTUP_TIMEOUT in log.read_text(errors="replace")


def build_assets(assets: Path, seed: int, echo=print, level: str = QUICKSTART_DEFAULTS["LEVEL"]) -> float:
    """``python -m srpo_verl.tiny.build --out ASSETS --seed S --level L --reuse`` (a no-op on matching assets);
    seconds taken. Raises RuntimeError with the output's tail on failure."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "srpo_verl.tiny.build", "--out", str(assets), "--seed", str(seed),
                           "--level", level, "--reuse"], cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tiny assets for seed {seed} ({assets}) failed:\n{(done.stdout + done.stderr)[-2000:]}")
    took = time.monotonic() - started
    echo(f"[compare] tiny assets seed {seed}: {assets} ({took:.0f} s)")
    return took


def run_all(specs: list[RunSpec], out: Path, assets_template: str, run_timeout_s: float, budget_s: float,
            echo=print, min_run_s: float = 60.0) -> list[RunResult]:
    """Run the plan one process at a time within the bounds (module docstring); one result per spec, in order."""
    started = time.monotonic()
    results, built = [], set()
    for spec in specs:
        run_dir = run_dir_of(out, spec)
        assets = assets_dir(assets_template, spec)
        if spec.seed not in built:  # first, so that a finished run on other assets is not reused
            build_assets(assets, spec.seed, echo, spec.level)
            built.add(spec.seed)
        if is_finished(run_dir, spec, assets_settings(assets)):
            echo(f"[compare] {spec.method} seed{spec.seed}: finished earlier, skipped ({run_dir})")
            results.append(RunResult(spec, "skipped", spec.steps))
            if load_start_val(out, spec, assets) is None:
                save_start_val(out, spec, assets, run_dir)
            continue
        remaining = budget_s - (time.monotonic() - started)
        if remaining < min_run_s:
            echo(f"[compare] {spec.method} seed{spec.seed}: not started ({remaining:.0f} s of budget left)")
            results.append(RunResult(spec, "not started", note=f"{max(remaining, 0):.0f} s of budget left"))
            continue
        timeout = min(run_timeout_s, remaining)
        echo(f"[compare] {spec.method} seed{spec.seed}: lr {spec.lr:.3g}, {spec.steps} steps (at most {timeout:.0f} s)"
             f" -> {run_dir}")
        start_val = load_start_val(out, spec, assets)
        extra = (NO_START_VAL,) if start_val is not None else ()
        if start_val is not None:
            echo(f"[compare] {spec.method} seed{spec.seed}: start model validated earlier ({start_val['source']}), "
                 "not again")
        result = launch(spec, assets, run_dir, timeout, echo, extra)
        remaining = budget_s - (time.monotonic() - started)
        if result.status == "failed" and ray_startup_failed(run_dir) and remaining >= min_run_s:
            echo(f"[compare] {spec.method} seed{spec.seed}: Ray's node start-up timed out (host load); retrying once")
            result = launch(spec, assets, run_dir, min(run_timeout_s, remaining), echo, extra)
        if start_val is not None:
            append_start_val(run_dir, start_val)
        else:
            save_start_val(out, spec, assets, run_dir)
        echo(f"[compare] {spec.method} seed{spec.seed}: {result.status} at step {result.last_step}/{spec.steps} "
             f"in {result.wall_s:.0f} s" + (f" ({result.note})" if result.note else ""))
        results.append(result)
    return results


def collect(out: Path, specs: list[RunSpec]) -> dict[str, list]:
    """{method: [StepMetrics of each planned seed whose run dir has a metrics.jsonl with a training step]}, steps
    after the spec's last left out (``--report-only --steps 100`` reports the first 100 steps of longer runs)."""
    runs: dict[str, list] = {}
    for spec in specs:
        metrics = run_dir_of(out, spec) / "metrics.jsonl"
        if last_logged_step(metrics) >= 1:
            steps = read_jsonl(metrics)
            runs.setdefault(spec.method, []).append({s: m for s, m in steps.items() if s <= spec.steps})
    return runs


def replayed_batch(out: Path, seed: int) -> dict | None:
    """Teacher cost of SDPO and SRPO on the step-1 batch of ``seed`` (the same batch: step 1 samples from the same
    initial model, whatever the lr): whether the dumped rollouts agree, each method's teacher tokens and seconds, and
    SRPO's routed samples' teacher-prompt + response tokens (must equal its teacher tokens). None without both
    dumps. (This was scripts/bench/bench_methods_cpu.py's replayed-batch check.)"""
    dirs = {m: Path(out) / m / f"seed{seed}" for m in ("sdpo", "srpo")}
    paths = {m: (d / "rollouts" / "1.jsonl", d / "routes" / "step_1.jsonl", d / "metrics.jsonl") for m, d in dirs.items()}
    if not all(p.exists() for triple in paths.values() for p in triple):
        return None
    from srpo_verl.jsonl import load_jsonl

    rows = {m: sorted((r["input"], r["output"], r["score"]) for r in load_jsonl(paths[m][0])) for m in paths}
    step1 = {m: read_jsonl(paths[m][2]).get(1, {}) for m in paths}
    tokens = {m: step1[m].get(report.TEACHER_TOKENS_KEY) for m in paths}
    seconds = {m: step1[m].get(report.TEACHER_SECONDS_KEY) for m in paths}
    routed = [r for r in load_jsonl(paths["srpo"][1]) if r.get("distill")]
    exact = sum(r["teacher_prompt_len"] + r["response_len"] for r in routed)
    return {"seed": seed, "same_rollouts": rows["sdpo"] == rows["srpo"], "sdpo_tokens": tokens["sdpo"],
            "srpo_tokens": tokens["srpo"], "srpo_routed_tokens": exact, "sdpo_teacher_s": seconds["sdpo"],
            "srpo_teacher_s": seconds["srpo"]}


def write_report(out: Path, specs: list[RunSpec], results: list[RunResult], step_windows: str | None,
                 time_windows: str | None, command: str, echo=print) -> tuple[Path, Path]:
    """compare.png, table.md and table.json under ``out`` from the runs' metrics.jsonl; returns (png, table.md)."""
    out = Path(out)
    runs = collect(out, specs)
    if not runs:
        raise RuntimeError(f"no run under {out} logged a training step; nothing to report")
    steps = max(s.steps for s in specs)
    step_w = parse_step_windows(step_windows) if step_windows else report.default_step_windows(steps)
    time_w = parse_time_windows(time_windows) if time_windows else report.default_time_windows(runs)
    rows = report.comparison_rows(runs, step_w, time_w)
    lrs = {s.method: s.lr for s in specs}
    seeds = sorted({s.seed for s in specs})
    first = specs[0]
    title = (f"tiny Qwen3 toy (CPU): {first.batch} prompts x {first.n} rollouts, {steps} steps, seeds "
             f"{','.join(map(str, seeds))}; lr " + ", ".join(f"{m} {lr:.2g}" for m, lr in lrs.items()))
    png = report.plot_comparison(runs, out / "compare.png", title)
    table = report.render_table(rows, step_w, time_w)
    status_lines = [f"- {r.spec.method} seed {r.spec.seed}: "
                    f"{'finished (an earlier invocation)' if r.status == 'skipped' else r.status}, "
                    f"step {r.last_step}/{r.spec.steps}"
                    + (f", {r.wall_s:.0f} s" if r.wall_s else "") + (f" ({r.note})" if r.note else "")
                    for r in results]
    replays = [rep for seed in seeds if (rep := replayed_batch(out, seed)) is not None]
    replay_lines = []
    for rep in replays:
        ratio = rep["srpo_tokens"] / rep["sdpo_tokens"] if rep["sdpo_tokens"] else math.nan
        replay_lines.append(
            f"- seed {rep['seed']}: same step-1 rollouts {rep['same_rollouts']}; teacher tokens SDPO "
            f"{rep['sdpo_tokens']:.0f}, SRPO {rep['srpo_tokens']:.0f} (ratio {ratio:.3f}); SRPO = its routed "
            f"samples' teacher-prompt + response tokens ({rep['srpo_routed_tokens']}): "
            f"{rep['srpo_tokens'] == rep['srpo_routed_tokens']}; teacher time SDPO {rep['sdpo_teacher_s'] or 0:.3f} s, "
            f"SRPO {rep['srpo_teacher_s'] or 0:.3f} s")
    text = (f"# Toy comparison\n\n{title}\n\n{table}\n## Runs\n\n" + "\n".join(status_lines) + "\n"
            + ("\n## Teacher cost on the replayed step-1 batch\n\n" + "\n".join(replay_lines) + "\n"
               if replay_lines else "")
            + f"\n## Command\n\n```\n{command}\n```\n")
    md = out / "table.md"
    md.write_text(text)

    def cell(c: report.Cell) -> dict:
        return {"mean": c.mean, "std": c.std, "n": c.n, "of": c.of}

    (out / "table.json").write_text(json.dumps({
        "step_windows": [w.label for w in step_w], "time_windows": [w.label for w in time_w],
        "lr": lrs, "runs": [{**asdict(r.spec), "status": r.status, "last_step": r.last_step,
                             "wall_s": round(r.wall_s, 1), "note": r.note} for r in results],
        "methods": {row.method: {"seeds": row.seeds, "base": cell(row.base), "by_step": [cell(c) for c in row.by_step],
                                 "by_time": [cell(c) for c in row.by_time], "step_seconds": cell(row.step_seconds),
                                 "teacher_seconds": cell(row.teacher_seconds),
                                 "teacher_tokens": cell(row.teacher_tokens), "final_step": cell(row.final_step),
                                 "final_val": cell(row.final_val), "auc": cell(row.auc)}
                    for row in rows},
        "replayed_batch": replays}, indent=1))
    echo(table)
    echo("\n".join(status_lines))
    if replay_lines:
        echo("\n".join(replay_lines))
    echo(f"[compare] figure {png}\n[compare] table {md}")
    return png, md


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from srpo_verl.tiny.build import LEVELS

    knobs = quickstart_defaults()
    parser = argparse.ArgumentParser(
        description="GRPO / SDPO / SRPO (and ablations) x seeds on the CPU toy: one PNG of mean ± std curves and a "
                    "Table-1-style table of best validation accuracy within step and time budgets.",
        epilog="Trailing key=value arguments are Hydra overrides for every run (e.g. data.val_max_samples=50).")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(LR_RATIO))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=int(knobs["STEPS"]))
    parser.add_argument("--batch", type=int, default=int(knobs["BATCH"]), help="prompts per step")
    parser.add_argument("--n", type=int, default=int(knobs["N"]), help="rollouts per prompt")
    parser.add_argument("--test-freq", type=int, default=int(knobs["TEST_FREQ"]),
                        help="validate every K steps (and before training and at the last step)")
    parser.add_argument("--val-n", type=int, default=int(knobs["VAL_N"]), help="validation samples per prompt")
    parser.add_argument("--srpo-lr", type=float, default=float(knobs["LR"]),
                        help="SRPO's lr; the others keep the paper's ratios (GRPO = /5, SDPO = x2); default: the "
                             "quickstart's LR")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--level", default=knobs["LEVEL"], choices=list(LEVELS),
                        help="tiny-asset level (srpo_verl.tiny.build.LEVELS); default: the quickstart's")
    parser.add_argument("--assets", default=None,
                        help="tiny assets dir per seed ({seed} and {level} are replaced; built when missing; default: "
                             "the quickstart's, runs/tiny_assets_seed{seed} or runs/tiny_assets_{level}_seed{seed})")
    parser.add_argument("--run-timeout-min", type=float, default=30.0, help="wall-clock bound of one run")
    parser.add_argument("--budget-min", type=float, default=60.0, help="wall-clock bound of the whole invocation")
    parser.add_argument("--step-windows", default=None, help="e.g. 10,20,40 (default: 1/4, 1/2, all of --steps)")
    parser.add_argument("--time-windows", default=None,
                        help="e.g. 60s,2m (default: 1/4, 1/2, all of the shortest method's mean training time)")
    parser.add_argument("--report-only", action="store_true", help="launch nothing; report the runs under --out")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (key=value)")
    args = parser.parse_args(argv)
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        parser.error(f"overrides must be key=value, got {bad}")
    for name in ("steps", "batch", "n", "test_freq", "val_n"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.srpo_lr <= 0:
        parser.error(f"--srpo-lr must be > 0, got {args.srpo_lr}")
    if args.assets is None:
        name = "tiny_assets_seed{seed}" if args.level == knobs["LEVEL"] else "tiny_assets_{level}_seed{seed}"
        args.assets = str(REPO_ROOT / "runs" / name)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    specs = plan_runs(args.methods, args.seeds, args.srpo_lr, args.steps, args.batch, args.n, args.test_freq,
                      args.val_n, args.overrides, args.level)
    echo = lambda text: print(text, flush=True)  # noqa: E731
    started = time.monotonic()
    if args.report_only:
        results = [RunResult(s, "finished" if is_finished(run_dir_of(args.out, s), s, assets_settings(
                                 assets_dir(args.assets, s))) else "unfinished",
                             last_logged_step(run_dir_of(args.out, s) / "metrics.jsonl")) for s in specs]
    else:
        echo(f"[compare] {len(specs)} runs ({', '.join(args.methods)} x seeds {args.seeds}), lr "
             + ", ".join(f"{m} {method_lr(m, args.srpo_lr):.3g}" for m in args.methods) + f"; out {args.out}")
        results = run_all(specs, args.out, args.assets, 60.0 * args.run_timeout_min, 60.0 * args.budget_min, echo)
    command = "python scripts/bench/compare_methods.py " + " ".join(argv)
    try:
        write_report(args.out, specs, results, args.step_windows, args.time_windows, command, echo)
    except RuntimeError as error:  # no run logged a step: say so and what happened to each run
        echo(f"[compare] {error}")
        for r in results:
            echo(f"[compare] {r.spec.method} seed {r.spec.seed}: {r.status}" + (f" ({r.note})" if r.note else ""))
        return 1
    echo(f"[compare] total {time.monotonic() - started:.0f} s")
    bad = [r for r in results if r.status not in ("finished", "skipped")]
    return 1 if bad and not args.report_only else 0


if __name__ == "__main__":
    sys.exit(main())
