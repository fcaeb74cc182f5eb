"""What SRPO did in a step, sample by sample: ``srpo.log_samples`` routed samples per logging step.

At step 1 and every ``srpo.log_samples_freq`` steps the SRPO trainer's teacher step calls :func:`log_step_samples`,
which picks ``srpo.log_samples`` rows round-robin over the routes (:func:`srpo_verl.core.diagnostics.pick_log_samples`)
and, for each, records the student's rendered prompt and response, reward, route, the demonstration's key, and on
SDPO-routed rows the rendered teacher prompt (demonstration included) with per-token teacher entropy and entropy
weight summaries. The records go to ``<route_dump_dir>/samples_step_<k>.jsonl`` (next to the route dump's
``step_<k>.jsonl``), to the console one line each (:func:`console_line`), and to the wandb table ``srpo/samples``
when ``wandb`` is in ``trainer.logger``.

Everything but :func:`log_step_samples` (TransferQueue reads) and :func:`log_wandb_table` (wandb) is pure.
"""

from __future__ import annotations

import dataclasses
import json
import os

import torch

from srpo_verl.console import PREFIX
from srpo_verl.core.diagnostics import pick_log_samples, sample_routes, token_summary

#: the folder under trainer.default_local_dir the route dump and the samples go to when route_dump_dir is unset
DEFAULT_DUMP_SUBDIR = "srpo_dump"
WANDB_KEY = "srpo/samples"
#: the demonstration key logged for a sample whose demonstration came from the success memory
MEMORY_DEMO_KEY = "success_memory"
WANDB_COLUMNS = ("step", "row", "route", "reward", "prompt", "response", "teacher_prompt", "entropy_mean",
                 "weight_mean", "weight_min", "weight_max")


def with_dump_dir(settings, default_local_dir: str, cwd: str | None = None):
    """``settings`` with ``route_dump_dir`` defaulted to ``<default_local_dir>/srpo_dump`` (made absolute against
    ``cwd``, as verl resolves the checkpoint folder) when samples are logged (teacher methods, log_samples > 0) and
    no dump folder was given; otherwise ``settings`` unchanged."""
    if settings.route_dump_dir or not settings.log_samples or not settings.uses_teacher:
        return settings
    folder = os.path.join(default_local_dir, DEFAULT_DUMP_SUBDIR)
    if not os.path.isabs(folder):
        folder = os.path.join(cwd or os.getcwd(), folder)
    return dataclasses.replace(settings, route_dump_dir=folder)


def is_logging_step(step: int, n: int, freq: int) -> bool:
    """Samples are logged at step 1 and at every multiple of ``freq`` (never when ``n`` is 0)."""
    return n > 0 and (step == 1 or step % freq == 0)


def samples_path(folder: str, step: int) -> str:
    return os.path.join(folder, f"samples_step_{step}.jsonl")


def sample_record(step: int, row: int, key: str, route: str, reward: float, demo_key: str | None, prompt: str,
                  response: str, response_tokens: list[str], teacher_prompt: str | None,
                  entropy: torch.Tensor | None, weights: torch.Tensor | None, weights_applied: bool) -> dict:
    """One sample's record (a JSON-able dict). ``entropy`` / ``weights``: [R_i] per valid response token of an
    SDPO-routed row (None on GRPO rows: the teacher never ran on them); ``weights_applied`` says whether the loss
    multiplies them in (srpo only)."""
    return {
        "step": step,
        "row": row,
        "key": key,
        "route": route,
        "reward": float(reward),
        "demo_key": demo_key,
        "prompt": prompt,
        "response": response,
        "response_tokens": response_tokens,
        "teacher_prompt": teacher_prompt,
        "teacher_entropy": None if entropy is None else token_summary(entropy),
        "weight": None if weights is None else token_summary(weights),
        "weights_applied": bool(weights_applied),
    }


def _short(text: str | None, limit: int) -> str:
    """``text`` on one line (newlines as ⏎), cut to ``limit`` characters with an ellipsis."""
    if text is None:
        return "-"
    flat = text.replace("\r", "").replace("\n", "⏎")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _stats(summary: dict | None) -> str:
    if not summary or summary["mean"] is None:
        return "-"
    return f"{summary['mean']:.3f}[{summary['min']:.3f},{summary['max']:.3f}]"


def teacher_addition(prompt: str, teacher_prompt: str | None) -> str | None:
    """What the teacher prompt adds to the student's: the rendered teacher prompt from the first character where
    the two differ (the solution block with the demonstration, the instruction and what follows); None for no
    teacher prompt."""
    if teacher_prompt is None:
        return None
    common = 0
    for a, b in zip(prompt, teacher_prompt):
        if a != b:
            break
        common += 1
    return teacher_prompt[common:]


def console_line(record: dict, index: int, total: int, limit: int = 60) -> str:
    """The compact one-line view of a record, e.g.
    ``[srpo] sample 1/4 step 3 sdpo reward=0.00 tokens=7 H_T=0.412[0.010,1.903] w=1.081[0.312,2.004]
    response='<answer>297</answer>' teacher+='⏎Correct solution:⏎⏎<answer>279</answer>⏎⏎Correctly solve…'``
    (``teacher+``: :func:`teacher_addition`, where the demonstration is; ``-`` on GRPO rows)."""
    tokens = len(record["response_tokens"])
    added = teacher_addition(record["prompt"], record["teacher_prompt"])
    return (f"{PREFIX} sample {index}/{total} step {record['step']} {record['route']} reward={record['reward']:.2f} "
            f"tokens={tokens} H_T={_stats(record['teacher_entropy'])} w={_stats(record['weight'])} "
            f"response='{_short(record['response'], limit)}' teacher+='{_short(added, limit)}'")


def wandb_rows(records: list[dict]) -> list[list]:
    """The rows of the wandb table (columns :data:`WANDB_COLUMNS`)."""
    rows = []
    for r in records:
        weight, entropy = r["weight"] or {}, r["teacher_entropy"] or {}
        rows.append([r["step"], r["row"], r["route"], r["reward"], r["prompt"], r["response"], r["teacher_prompt"],
                     entropy.get("mean"), weight.get("mean"), weight.get("min"), weight.get("max")])
    return rows


def write_samples(folder: str, step: int, records: list[dict]) -> str:
    """Write ``records`` to ``<folder>/samples_step_<step>.jsonl``; returns the path."""
    os.makedirs(folder, exist_ok=True)
    path = samples_path(folder, step)
    with open(path, "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    return path


def log_wandb_table(loggers, step: int, records: list[dict]) -> bool:
    """Log the records as the wandb table ``srpo/samples`` when wandb is one of ``loggers`` and a run is active
    (verl's Tracking started it); returns whether it logged."""
    if isinstance(loggers, str):
        loggers = [loggers]
    if "wandb" not in list(loggers or []):
        return False
    import wandb

    if wandb.run is None:
        return False
    wandb.log({WANDB_KEY: wandb.Table(columns=list(WANDB_COLUMNS), data=wandb_rows(records))}, step=step)
    return True


def log_step_samples(trainer, routed, teacher, entropy_full: list[torch.Tensor], weights: torch.Tensor,
                     masks: list[torch.Tensor]) -> list[dict]:
    """Pick, record, write, print and (wandb) log this step's samples; [] when this is not a logging step.

    Args:
        trainer: the SRPO trainer (its ``srpo`` settings, ``global_steps``, ``tokenizer``, ``config``).
        routed: the step's ``RoutedBatch`` (meta, routes, per-sample rewards and padding flags);
        teacher: its ``TeacherBatch`` (the distilled rows and their teacher prompt ids).
        entropy_full: per row, the teacher entropy of each response token [R_i] (zeros on rows not distilled).
        weights: [Σ R_i] the step's entropy weights; masks: per row, its response mask [R_i].
    """
    import transfer_queue as tq

    settings, step = trainer.srpo, trainer.global_steps
    batch, route, rewards = routed.meta, routed.route, routed.rewards
    if not is_logging_step(step, settings.log_samples, settings.log_samples_freq):
        return []
    routes = sample_routes(route.distill, route.correct)
    picked = pick_log_samples(routes, routed.is_padding, settings.log_samples)
    if not picked:
        return []
    data = tq.kv_batch_get(keys=[batch.keys[i] for i in picked], partition_id=batch.partition_id,
                           select_fields=["prompts", "responses"])
    prompts, responses = data["prompts"].unbind(), data["responses"].unbind()
    lengths = [int(m.numel()) for m in masks]
    weight_rows = list(torch.split(weights, lengths))
    teacher_of = dict(zip(teacher.rows, teacher.prompts))
    tokenizer = trainer.tokenizer
    records = []
    for j, i in enumerate(picked):
        valid = masks[i].bool()
        ids = responses[j][valid].tolist()
        demo = int(route.demo_index[i])
        sdpo = routes[i] == "sdpo"
        from_memory = route.memory_demo is not None and bool(route.memory_demo[i])
        records.append(sample_record(
            step, i, batch.keys[i], routes[i], float(rewards[i]),
            batch.keys[demo] if demo >= 0 else (MEMORY_DEMO_KEY if from_memory else None),
            tokenizer.decode(prompts[j].tolist(), skip_special_tokens=False),
            tokenizer.decode(ids, skip_special_tokens=True),
            tokenizer.convert_ids_to_tokens(ids),
            tokenizer.decode(teacher_of[i].tolist(), skip_special_tokens=False) if i in teacher_of else None,
            entropy_full[i][valid] if sdpo else None, weight_rows[i][valid] if sdpo else None,
            settings.uses_entropy_weights,
        ))
    path = write_samples(settings.route_dump_dir, step, records)
    for index, record in enumerate(records, 1):
        print(console_line(record, index, len(records)), flush=True)
    print(f"{PREFIX} samples of step {step}: {path}", flush=True)
    log_wandb_table(trainer.config.trainer.get("logger", []), step, records)
    return records
