"""Standard math RL sets as verl parquet, scored by math-verify (data source family `math_verify`).

Train: MATH (Hendrycks et al.) train split, 7,500 problems (`DigitalLearningGmbH/MATH-lighteval`, the copy verl's
examples/data_preprocess/math_dataset.py reads). Test: MATH-500 (`HuggingFaceH4/MATH-500`, 500 problems of the
MATH test split; none is in the train split) or AIME 2024 (`HuggingFaceH4/aime_2024`, 30 problems).

Rows: the problem plus verl's math instruction as the one user message; the gold answer is the row's `answer` field,
or the content of the last `\\boxed{...}` of its `solution` (MATH train has no answer field). Every gold must parse
with math-verify (else no completion could score on it) and no test problem may be in the train split.

Local files (offline): JSONL with `problem` and `answer` (or `solution`) per line, read with the same checks and
one-line errors as the other preparers (`file:line: field 'problem' ...`).
"""

from __future__ import annotations

from pathlib import Path

from srpo_verl.data.common import verl_row
from srpo_verl.data.splits import SplitError, read_jsonl, require_field

TASK = "math"
INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
# name -> (hub dataset, split, data_source written, expected rows)
HF_SETS = {
    "math": ("DigitalLearningGmbH/MATH-lighteval", "train", "math_verify/MATH", 7500),
    "math500": ("HuggingFaceH4/MATH-500", "test", "math_verify/MATH-500", 500),
    "aime2024": ("HuggingFaceH4/aime_2024", "train", "math_verify/aime2024", 30),
}
TRAIN_SETS = ("math",)
TEST_SETS = ("math500", "aime2024")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` of `text` (braces balanced), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for position in range(begin - 1, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:position].strip() or None
    return None


def gold_answer(where: str, row: dict) -> str:
    """The row's gold answer: `answer` if present, else the last box of `solution`. SplitError when neither."""
    if "answer" in row:
        answer = row["answer"]
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = str(answer)
        if not isinstance(answer, str) or not answer.strip():
            raise SplitError(f"{where}: field 'answer' must be a non-empty string, got {answer!r:.80}")
        return answer.strip()
    solution = row.get("solution")
    if not isinstance(solution, str):
        raise SplitError(f"{where}: field 'answer' is missing and there is no 'solution' string to take it from")
    boxed = last_boxed(solution)
    if boxed is None:
        raise SplitError(f"{where}: field 'answer' is missing and field 'solution' has no closed \\boxed{{...}}")
    return boxed


def to_verl(where: str, row: dict, data_source: str, split: str, index: int, source_idx: int) -> dict:
    """One verl row from a source row with `problem` and `answer` / `solution`."""
    if "problem" not in row:
        raise SplitError(f"{where}: field 'problem' is missing")
    problem = row["problem"]
    if not isinstance(problem, str) or not problem.strip():
        raise SplitError(f"{where}: field 'problem' must be a non-empty string, got {problem!r:.80}")
    answer = gold_answer(where, row)
    messages = [{"role": "user", "content": f"{problem.strip()}\n\n{INSTRUCTION}"}]
    return verl_row(data_source, messages, "math", answer,
                    {"split": split, "index": index, "source_idx": source_idx, "task": TASK, "problem": problem})


def rows_from_records(source: str, records, data_source: str, split: str, line_of=None) -> list[dict]:
    """verl rows of (position, record) pairs; `line_of(position)` names a row in messages (file:line)."""
    line_of = line_of or (lambda position: f"{source}:row {position}")
    return [to_verl(line_of(position), record, data_source, split, index, position)
            for index, (position, record) in enumerate(records)]


def read_local(path: Path, data_source: str, split: str) -> list[dict]:
    """verl rows of a local JSONL file (SplitError naming file and line when it is missing or malformed)."""
    records = read_jsonl(Path(path))
    for line_number, record in records:
        require_field(path, line_number, record, "problem", str)
    return rows_from_records(str(path), records, data_source, split, line_of=lambda line: f"{path}:{line}")


def load_hf(name: str) -> list[dict]:
    """The rows of one hub set (network). RuntimeError with the cause and the offline way when it cannot."""
    dataset, split, _, _ = HF_SETS[name]
    try:
        from datasets import load_dataset

        return list(load_dataset(dataset, split=split))
    except Exception as err:  # noqa: BLE001 - any failure is reported with its cause and the way out
        raise RuntimeError(
            f"could not load {dataset} (split {split!r}) from the Hugging Face hub: {type(err).__name__}: {err}. "
            "This path needs internet access; offline, pass --local-train / --local-test JSONL files with "
            "'problem' and 'answer' (or 'solution') fields."
        ) from err


def rows_from_hf(name: str, records: list[dict], split: str) -> list[dict]:
    dataset, hf_split, data_source, _ = HF_SETS[name]
    return rows_from_records(f"hf://{dataset}/{hf_split}", list(enumerate(records)), data_source, split)


def check_disjoint(train: list[dict], test: list[dict], source: str) -> None:
    """SplitError when a test problem (same text, whitespace-normalised) is also a train problem."""
    def key(row):
        return " ".join(row["extra_info"]["problem"].split())

    seen = {key(row) for row in train}
    shared = [row["extra_info"]["source_idx"] for row in test if key(row) in seen]
    if shared:
        raise SplitError(f"math: {len(shared)} test problem(s) of {source} are also in the train split (the first at "
                         f"test row {shared[0]}); a test problem seen in training inflates the test score")


def check_golds(rows: list[dict], source: str, gold_parses=None) -> None:
    """SplitError naming the first row whose gold answer math-verify does not parse."""
    if gold_parses is None:
        from srpo_verl.rewards.math_answer import gold_parses
    for row in rows:
        gold = row["reward_model"]["ground_truth"]
        if not gold_parses(gold):
            raise SplitError(f"{source}: row {row['extra_info']['source_idx']}: gold answer {gold!r:.80} does not "
                             "parse with math-verify, so no completion could score on it")
