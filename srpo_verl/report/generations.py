"""Score verl validation dumps (`trainer.validation_data_dir/<step>.jsonl`) per question: avg@n and pass@k.

verl 0.9.1's V1 trainer (`PPOTrainer._validate` → `_write_generations`) writes one JSON object per sampled response
with keys `input`, `output`, `gts`, `score`, `step`, the reward's extra keys (ours: `acc`, `pred`, `format_ok`,
`feedback`, `reason`) and `uid` = "{prompt uid}_{session}_{turn}". The n samples of one question share the prompt
uid, so grouping by the part before the last two `_` fields gives the per-question counts (n_i, c_i).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from srpo_verl.jsonl import iter_jsonl
from srpo_verl.report.passk import mean_avg_at_n, mean_pass_at_k

SUCCESS_THRESHOLD = 0.5  # a sample is correct iff its `acc` (else `score`) is >= 0.5, the routing rule of SRPO_SPEC §1.2


@dataclass(frozen=True)
class QuestionCounts:
    """Samples per question: `n` drawn, `c` correct, keyed by the prompt uid."""

    uid: str
    n: int
    c: int


def prompt_uid(sample_uid: str) -> str:
    """The question part of verl's "{uid}_{session}_{turn}" key (the whole key when it has no such suffix)."""
    parts = sample_uid.rsplit("_", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0]
    return sample_uid


def read_generation_dump(path: Path, threshold: float = SUCCESS_THRESHOLD) -> list[QuestionCounts]:
    """Per-question (n, c) from one dump file, in first-seen order. Correctness uses `acc`, else `score`.

    Raises ValueError naming the file and line for malformed JSON, or a record without `uid` or a numeric
    `acc`/`score`.
    """
    path = Path(path)
    totals: OrderedDict[str, list[int]] = OrderedDict()
    for line_no, record in iter_jsonl(path):
        if not isinstance(record, dict) or "uid" not in record:
            raise ValueError(f"{path}:{line_no}: no 'uid' field (is this a verl validation dump?)")
        field = "acc" if "acc" in record else "score"
        value = record.get(field)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)):
            raise ValueError(f"{path}:{line_no}: field '{field}' is {value!r}, expected a number")
        counts = totals.setdefault(prompt_uid(str(record["uid"])), [0, 0])
        counts[0] += 1
        counts[1] += int(value >= threshold)
    if not totals:
        raise ValueError(f"{path}: no samples")
    return [QuestionCounts(uid, n, c) for uid, (n, c) in totals.items()]


def summarize(counts: list[QuestionCounts], ks: list[int]) -> dict[str, float]:
    """{'questions', 'samples_per_question', 'avg@n', 'pass@k'...} for one dump; avg in [0, 1].

    Every question must have the same n (verl samples `val_kwargs.n` per prompt); pass@k needs k <= n.
    """
    sizes = sorted({q.n for q in counts})
    if len(sizes) != 1:
        odd = next(q for q in counts if q.n != counts[0].n)
        raise ValueError(f"questions have different sample counts {sizes}, e.g. uid {odd.uid} has {odd.n}")
    n = sizes[0]
    pairs = [(q.n, q.c) for q in counts]
    result = {"questions": float(len(counts)), "samples_per_question": float(n), f"avg@{n}": mean_avg_at_n(pairs)}
    for k in ks:
        if k > n:
            raise ValueError(f"pass@{k} asked but only {n} samples per question were drawn")
        result[f"pass@{k}"] = mean_pass_at_k(pairs, k)
    return result


def dump_files(directory: Path) -> list[Path]:
    """`<step>.jsonl` files of a validation dump folder, by step (other names are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"validation dump folder not found: {directory}")
    files = [p for p in directory.glob("*.jsonl") if p.stem.isdigit()]
    if not files:
        raise FileNotFoundError(f"no <step>.jsonl validation dumps in {directory}")
    return sorted(files, key=lambda p: int(p.stem))
