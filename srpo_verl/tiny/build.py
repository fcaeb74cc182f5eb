"""Build the CPU quickstart's assets: tiny Qwen3 model + tokenizer, synthetic-task parquet, warm start.

    python -m srpo_verl.tiny.build --out DIR [--seed 0] [--level quickstart|long] [--warmstart-steps N] [--reuse]

writes
    DIR/model/               Qwen3ForCausalLM (fp32) + tokenizer + chat template, via save_pretrained
    DIR/data/train.parquet   verl rows, data_source="synthetic"
    DIR/data/test.parquet
    DIR/manifest.json        builder version, settings, measured warm-start accuracy (and its check), timings

Nothing is downloaded. Same settings and seed give identical weights, tokenizer and data on one machine; on any
machine the warm start converges to the accuracy its noisy targets set (``warmstart_target_accuracy``), and the
build fails with a clear error when the measured accuracy is further than ``accuracy_tolerance`` from
``expected_accuracy``. ``--reuse`` returns at once when DIR/manifest.json was written by this builder version with
the same settings.

A *level* (``LEVELS``) is a named set of settings: ``quickstart`` (the default, ``BuildSettings()`` unchanged) and
``long``, a start state far from the ceiling for long comparisons (docs/TOY_RESULTS.md): same task and guarantees
(student accuracy set by the noisy targets and checked, teacher copy checked), a lower student target.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from srpo_verl.tiny import task
from srpo_verl.tiny.model import TinyQwen3Shape, init_tiny_qwen3, tiny_qwen3_config
from srpo_verl.tiny.tokenizer import IM_END, to_hf_tokenizer, train_bpe
from srpo_verl.tiny.warmstart import (EncodedExample, measure_sampled_accuracy, supervised_warmstart,
                                      target_entropy)

# Bump whenever a change alters the built files, so cached assets (quickstart --reuse) are rebuilt.
BUILDER_VERSION = 4
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class BuildSettings:
    """Everything the built files depend on (recorded in the manifest; a cache hit needs equality)."""

    seed: int = 0
    warmstart_steps: int = 450
    warmstart_batch_size: int = 32
    warmstart_lr: float = 3e-3
    # sampled accuracy the noisy student targets set (task.digit_accuracy per digit) on the train prompts; the test
    # prompts land lower (the model generalises the sort imperfectly). Teacher rows stay clean
    warmstart_target_accuracy: float = 0.4
    # each train problem appears once as a student row and this many times as a teacher row: copying a shown answer
    # is what SRPO's self-teacher must do, and with one teacher row seed 3 of builder v3 copied only 46% of answers
    # (its SRPO run gained 17 points where seeds with 73-93% copy gained 36-62)
    teacher_repeats: int = 2
    # what the built model's sampled accuracy must be (None: no check, e.g. for deliberately short warm starts).
    # Measured on the 2-core development machine, seeds 0-4: 0.378, 0.367, 0.403, 0.358, 0.402 (mean 0.382, std
    # 0.018; teacher prompt 0.982, 0.968, 0.982, 0.990, 0.973)
    expected_accuracy: float | None = 0.38
    accuracy_tolerance: float = 0.10
    # the least sampled accuracy of the teacher prompt (answer shown) on the test prompts (None: no check)
    min_teacher_accuracy: float | None = 0.9
    # 850 + 150 of the 1000 three-digit strings; 150 test prompts x 4 samples = 600 validation samples
    num_train: int = 850
    num_test: int = 150
    vocab_size: int = 384
    shape: TinyQwen3Shape = field(default_factory=TinyQwen3Shape)
    eval_samples_per_prompt: int = 4
    max_new_tokens: int = 8

    def to_dict(self) -> dict:
        return {"builder_version": BUILDER_VERSION, **asdict(self)}


@dataclass(frozen=True)
class TinyAssets:
    """Paths of a built asset directory and what the builder measured."""

    root: Path
    model_dir: Path
    train_parquet: Path
    test_parquet: Path
    manifest: dict


DEFAULT_LEVEL = "quickstart"
# level name -> BuildSettings fields it changes (nothing else differs; the quickstart's assets stay as they are)
LEVELS: dict[str, dict] = {
    DEFAULT_LEVEL: {},
    # student target 0.03: each digit right with 0.31 and a neighbour with 0.34 each (0.69 at 0 and 9), so the most
    # likely answer is wrong and a 16 x 4 GRPO batch has a correct rollout in about 2 of its 16 groups at the start;
    # with target 0.1 (digits right with 0.46) GRPO went 0.12 -> 0.79 in 60 steps, seed 0
    # (measured on the test prompts, seeds 0-3: 0.043, 0.055, 0.017, 0.035)
    "long": {"warmstart_target_accuracy": 0.03, "expected_accuracy": 0.04, "accuracy_tolerance": 0.035},
}


def level_settings(level: str, base: BuildSettings | None = None) -> BuildSettings:
    """``base`` (default ``BuildSettings()``) with the fields of ``LEVELS[level]``."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}: expected one of {', '.join(LEVELS)}")
    return dataclasses.replace(base or BuildSettings(), **LEVELS[level])


def level_of(settings: BuildSettings) -> str | None:
    """The level whose settings (with this seed) are ``settings``; None for any other settings."""
    base = BuildSettings(seed=settings.seed)
    return next((name for name in LEVELS if level_settings(name, base) == settings), None)


def _paths(out_dir: Path) -> tuple[Path, Path, Path]:
    return out_dir / "model", out_dir / "data" / "train.parquet", out_dir / "data" / "test.parquet"


def load_manifest(out_dir: str | Path) -> dict | None:
    """The manifest of ``out_dir``, or None when there is none (a malformed one raises with the path)."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); delete the directory to rebuild") from error


def _assets(out_dir: Path, manifest: dict) -> TinyAssets:
    model_dir, train, test = _paths(out_dir)
    return TinyAssets(out_dir, model_dir, train, test, manifest)


def cached_assets(out_dir: str | Path, settings: BuildSettings) -> TinyAssets | None:
    """The assets in ``out_dir`` if they were built by this builder version with ``settings``, else None."""
    out_dir = Path(out_dir)
    manifest = load_manifest(out_dir)
    if manifest is None or manifest.get("settings") != json.loads(json.dumps(settings.to_dict())):
        return None
    assets = _assets(out_dir, manifest)
    if not (assets.model_dir / "config.json").exists() or not assets.train_parquet.exists() or not assets.test_parquet.exists():
        return None
    return assets


def tokenizer_corpus(problems: list[task.Problem]) -> list[str]:
    """Texts the BPE is trained on: each conversation rendered as the model will see it (thinking off), as a
    student prompt and as a teacher prompt."""
    texts = []
    for p in problems:
        for system, user in (task.chat_messages(p), task.teacher_messages(p)):
            texts.append(
                f"<|im_start|>system\n{system['content']}<|im_end|>\n<|im_start|>user\n{user['content']}"
                f"<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n{task.reference_response(p)}"
                "<|im_end|>\n"
            )
    return texts


def encode_prompt(tokenizer, problem: task.Problem, teacher: bool = False) -> list[int]:
    """Prompt token ids exactly as verl renders them (chat template, generation prompt, enable_thinking=False);
    ``teacher``: the SRPO teacher prompt with the correct answer as demonstration."""
    messages = task.teacher_messages(problem) if teacher else task.chat_messages(problem)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, enable_thinking=False, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)


def noisy_digit_targets(tokenizer, problem: task.Problem, response_ids: tuple[int, ...], digit_accuracy: float):
    """Per response token: for each answer digit, the right digit with ``digit_accuracy`` and its near misses
    sharing the rest; None (one-hot) for the format tokens. Raises when a digit is not its own token."""
    digit_token = {str(d): tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    answer_ids = tokenizer.encode(problem.answer, add_special_tokens=False)
    if answer_ids != [digit_token[d] for d in problem.answer]:
        raise ValueError(f"answer {problem.answer!r} does not tokenise one digit per token: {answer_ids}")
    start = next(i for i in range(len(response_ids)) if tuple(response_ids[i : i + len(answer_ids)]) == tuple(answer_ids))
    targets: list = [None] * len(response_ids)
    for offset, digit in enumerate(problem.answer):
        misses = task.near_misses(digit)
        targets[start + offset] = ((digit_token[digit], digit_accuracy),
                                   *((digit_token[m], (1.0 - digit_accuracy) / len(misses)) for m in misses))
    return tuple(targets)


def check_accuracy(settings: BuildSettings, accuracy: float) -> dict:
    """The manifest's record of the accuracy check; ``ok`` False when outside the tolerance."""
    if settings.expected_accuracy is None:
        return {"expected": None, "tolerance": None, "ok": True}
    ok = abs(accuracy - settings.expected_accuracy) <= settings.accuracy_tolerance
    return {"expected": settings.expected_accuracy, "tolerance": settings.accuracy_tolerance, "ok": ok}


def check_teacher_accuracy(settings: BuildSettings, accuracy: float) -> dict:
    """The manifest's record of the teacher-copy check; ``ok`` False when below ``min_teacher_accuracy``."""
    if settings.min_teacher_accuracy is None:
        return {"min": None, "ok": True}
    return {"min": settings.min_teacher_accuracy, "ok": accuracy >= settings.min_teacher_accuracy}


def build_tiny_assets(out_dir: str | Path, seed: int | None = None, warmstart_steps: int | None = None,
                      settings: BuildSettings | None = None, log=print) -> TinyAssets:
    """Build (overwrite) the model, tokenizer, data and manifest in ``out_dir``; see the module docstring.

    ``seed`` and ``warmstart_steps`` override those of ``settings`` (default ``BuildSettings()``);
    ``warmstart_steps=0`` skips the warm start (a random model).
    """
    settings = settings or BuildSettings()
    overrides = {}
    if seed is not None:
        overrides["seed"] = seed
    if warmstart_steps is not None:
        overrides["warmstart_steps"] = warmstart_steps
    settings = dataclasses.replace(settings, **overrides)
    threads = torch.get_num_threads()
    # One intra-op thread: float reductions then happen in one fixed order, so a seed gives the same weights on any
    # machine with this torch build (and a shared, busy CPU does not stall on thread barriers).
    torch.set_num_threads(1)
    try:
        return _build(Path(out_dir), settings, log)
    finally:
        torch.set_num_threads(threads)


def _build(out_dir: Path, settings: BuildSettings, log) -> TinyAssets:
    from srpo_verl.data.parquet import write_verl_parquet

    model_dir, train_path, test_path = _paths(out_dir)
    started = time.perf_counter()

    train, test = task.make_splits(settings.seed, settings.num_train, settings.num_test)
    write_verl_parquet(task.verl_rows(train, "train"), train_path)
    write_verl_parquet(task.verl_rows(test, "test"), test_path)

    tokenizer = to_hf_tokenizer(train_bpe(tokenizer_corpus(train), settings.vocab_size))
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    config = tiny_qwen3_config(settings.shape, len(tokenizer), eos_token_id=eos_id,
                               pad_token_id=tokenizer.pad_token_id)
    model = init_tiny_qwen3(config, settings.seed)

    # every problem as the student sees it (noisy digits), then teacher_repeats times as the self-teacher sees it
    # (answer shown, clean target: the teacher copies a shown answer)
    digit_accuracy = task.digit_accuracy(settings.warmstart_target_accuracy)
    examples = [
        EncodedExample(tuple(encode_prompt(tokenizer, p, teacher)), response,
                       None if teacher else noisy_digit_targets(tokenizer, p, response, digit_accuracy))
        for p in train
        for response in [tuple(tokenizer.encode(task.reference_response(p), add_special_tokens=False) + [eos_id])]
        for teacher in (False,) + (True,) * settings.teacher_repeats
    ]
    warm_started = time.perf_counter()
    losses = []
    if settings.warmstart_steps > 0:
        losses = supervised_warmstart(model, examples, steps=settings.warmstart_steps,
                                      batch_size=settings.warmstart_batch_size, lr=settings.warmstart_lr,
                                      seed=settings.seed, pad_id=tokenizer.pad_token_id)
    warmstart_s = time.perf_counter() - warm_started

    evaluated = time.perf_counter()
    accuracy, teacher_accuracy = (measure_sampled_accuracy(
        model, [encode_prompt(tokenizer, p, teacher) for p in test], [p.answer for p in test],
        decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        is_correct=task.is_correct, has_answer_block=task.has_answer_block,
        samples_per_prompt=settings.eval_samples_per_prompt, max_new_tokens=settings.max_new_tokens,
        eos_id=eos_id, seed=settings.seed + 1,
    ) for teacher in (False, True))
    eval_s = time.perf_counter() - evaluated

    model_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = [eos_id, tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    manifest = {
        "settings": settings.to_dict(),
        "level": level_of(settings),
        "vocab_size": len(tokenizer),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "prompt_tokens_max": max(len(e.prompt_ids) for e in examples),
        "response_tokens": len(examples[0].response_ids),
        "warmstart_loss_first_last": [losses[0], losses[-1]] if losses else None,
        # the mean loss of the last 20 steps against the loss a converged model reaches
        "warmstart_loss_last20_vs_floor": ([sum(losses[-20:]) / len(losses[-20:]), target_entropy(examples)]
                                           if losses else None),
        "sampled_accuracy": asdict(accuracy),
        "accuracy_check": check_accuracy(settings, accuracy.accuracy),
        # the same sampling on the teacher prompt (the answer shown as the demonstration): how often it copies it
        "teacher_sampled_accuracy": asdict(teacher_accuracy),
        "teacher_accuracy_check": check_teacher_accuracy(settings, teacher_accuracy.accuracy),
        "seconds": {"warmstart": round(warmstart_s, 2), "eval": round(eval_s, 2),
                    "total": round(time.perf_counter() - started, 2)},
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"[tiny] {out_dir}: Qwen3 {manifest['num_parameters']:,} params, vocab {manifest['vocab_size']}, "
        f"{settings.num_train}/{settings.num_test} train/test rows, prompt <= {manifest['prompt_tokens_max']} tokens")
    log(f"[tiny] warm start {settings.warmstart_steps} steps in {warmstart_s:.1f} s; sampled accuracy (T=1, "
        f"{accuracy.samples_per_prompt}/prompt, {accuracy.num_prompts} test prompts) = {accuracy.accuracy:.1%}, "
        f"mixed groups {accuracy.mixed_group_fraction:.1%}, answer format {accuracy.format_rate:.1%}; the teacher "
        f"prompt (answer shown) {teacher_accuracy.accuracy:.1%}")
    check = manifest["accuracy_check"]
    if not check["ok"]:
        raise ValueError(f"{out_dir / MANIFEST_NAME}: warm-start sampled accuracy {accuracy.accuracy:.3f} is not within "
                         f"{check['tolerance']} of the expected {check['expected']} (BuildSettings.expected_accuracy); "
                         "the warm start did not converge on this machine (try more warmstart_steps)")
    if not manifest["teacher_accuracy_check"]["ok"]:
        raise ValueError(f"{out_dir / MANIFEST_NAME}: the teacher prompt's sampled accuracy {teacher_accuracy.accuracy:.3f} "
                         f"is below BuildSettings.min_teacher_accuracy={settings.min_teacher_accuracy}: the self-teacher "
                         "does not copy the shown answer, so SDPO would distil towards wrong digits (try more "
                         "warmstart_steps or teacher_repeats)")
    return _assets(out_dir, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--level", default=DEFAULT_LEVEL, choices=list(LEVELS),
                        help=f"named settings (default {DEFAULT_LEVEL}: the quickstart's)")
    parser.add_argument("--warmstart-steps", type=int, default=None,
                        help=f"supervised warm-start steps (default {BuildSettings.warmstart_steps}; 0 = none)")
    parser.add_argument("--reuse", action="store_true",
                        help="do nothing when OUT holds assets of this builder version with the same settings")
    args = parser.parse_args(argv)
    settings = level_settings(args.level, BuildSettings(seed=args.seed))
    if args.warmstart_steps is not None:
        settings = dataclasses.replace(settings, warmstart_steps=args.warmstart_steps)
    if args.reuse:
        cached = cached_assets(args.out, settings)
        if cached is not None:
            acc = cached.manifest["sampled_accuracy"]["accuracy"]
            print(f"[tiny] reusing {args.out} (builder v{BUILDER_VERSION}, seed {args.seed}, level {args.level}, "
                  f"warm-start accuracy {acc:.1%})")
            return 0
    build_tiny_assets(args.out, settings=settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
