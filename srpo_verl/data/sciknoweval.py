"""SciKnowEval level-3 multiple-choice tasks: Chemistry, Physics, Biology, Materials (SRPO_SPEC §2, §5.4).

Two sources, one row format (the SDPO split format: `idx`, `prompt`, `system`, `answer`, `description`, ...):
- local: the SDPO repo's `sciknoweval/<task>/{train,test}.json`, used verbatim. The `system` text (with a newline at
  each end) and the `prompt` (ending in "Please reason step by step.") are what the paper's numbers were measured with;
- from Hugging Face: `hicai-zju/SciKnowEval` (config = domain, split "test"), filtered to level L3 and the
  types mcq-4-choices / mcq-2-choices, numbered 0..N-1 in file order, then split 90/10 with
  `datasets.Dataset.train_test_split(test_size=0.1, seed=42)` and formatted like the SDPO repo's rows.
"""

from __future__ import annotations

import re
from pathlib import Path

from srpo_verl.data.common import SplitCounts, verl_row
from srpo_verl.data.splits import RowScreen, SplitError, read_jsonl, require_field, screen_rows

DATA_SOURCE = "sciknoweval"
EXPECTED_COUNTS = {
    "chemistry": SplitCounts(1890, 210),
    "physics": SplitCounts(720, 80),
    "biology": SplitCounts(450, 50),
    "material": SplitCounts(841, 94),
}
TASKS = tuple(EXPECTED_COUNTS)
VALID_ANSWERS = ("A", "B", "C", "D")
# The option lines of a user prompt ("A: text" at a line start) and the layouts of the two question types.
_OPTION_LINE = re.compile(r"^([A-Z]): ", re.MULTILINE)
OPTION_LAYOUTS = (("A", "B"), ("A", "B", "C", "D"))

HF_DATASET = "hicai-zju/SciKnowEval"
HF_CONFIGS = {"chemistry": "Chemistry", "physics": "Physics", "biology": "Biology", "material": "Material"}
HF_LEVEL = "L3"
HF_MCQ_TYPES = ("mcq-4-choices", "mcq-2-choices")
SPLIT_TEST_SIZE = 0.1
SPLIT_SEED = 42

# The system prompt of every SDPO split row (SRPO paper Listing 1), newlines at both ends included. The SDPO code
# uses it unchanged for 2-choice questions too, although it says "four options".
SYSTEM_PROMPT = (
    "\nGiven a question and four options, please select the right answer. Respond in the following format:\n"
    "<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n\n"
    "For the answer, only output the letter corresponding to the correct option (A, B, C, or D), and nothing else. "
    'Do not restate the answer text. For example, if the answer is "A", just output:\n<answer>\nA\n</answer>\n'
)
USER_SUFFIX = "\nPlease reason step by step."
DESCRIPTION_SUFFIX = " The solution will be evaluated in a mcq environment."


def option_labels(path: Path | str, line_number: int, question: str) -> tuple[str, ...]:
    """The option letters the user prompt lists ("A: ..." lines): A, B or A, B, C, D, else SplitError."""
    labels = tuple(_OPTION_LINE.findall(question))
    if not labels:
        raise SplitError(f"{path}:{line_number}: field 'prompt' lists no options (lines 'A: ...', 'B: ...')")
    if labels not in OPTION_LAYOUTS:
        raise SplitError(f"{path}:{line_number}: field 'prompt' lists the options {', '.join(labels):.60}; expected "
                         "A, B (2-choice) or A, B, C, D (4-choice)")
    return labels


def split_row_to_verl(path: Path | str, line_number: int, row: dict, task: str, split: str, index: int) -> dict:
    """A validated SDPO split row → a verl row. Prompt texts are used verbatim (no stripping)."""
    question = require_field(path, line_number, row, "prompt", str)
    system = require_field(path, line_number, row, "system", str)
    answer = require_field(path, line_number, row, "answer", str)
    source_idx = require_field(path, line_number, row, "idx", int)
    if answer not in VALID_ANSWERS:
        raise SplitError(f"{path}:{line_number}: field 'answer' must be one of {VALID_ANSWERS}, got {answer!r:.40}")
    labels = option_labels(path, line_number, question)
    if answer not in labels:
        raise SplitError(f"{path}:{line_number}: field 'answer' is {answer!r} but the prompt's options are "
                         f"{', '.join(labels)}")
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    extra_info = {"split": split, "index": index, "source_idx": source_idx, "task": task}
    return verl_row(DATA_SOURCE, messages, "mcq", answer, extra_info)


def read_local_split(splits_root: Path, task: str, split: str, screen: RowScreen | None = None) -> list[dict]:
    """verl rows of `<splits_root>/sciknoweval/<task>/<split>.json`, in file order. `screen` counts the dropped
    rows (default: a strict one, which refuses them)."""
    if task not in EXPECTED_COUNTS:
        raise ValueError(f"unknown SciKnowEval task {task!r}; known: {', '.join(TASKS)}")
    path = Path(splits_root) / "sciknoweval" / task / f"{split}.json"
    rows = screen_rows(path, read_jsonl(path), screen or RowScreen())
    return [split_row_to_verl(path, line, row, task, split, index) for index, (line, row) in enumerate(rows)]


# ---- from Hugging Face -------------------------------------------------------------------------------------------

def format_hf_question(question: str, labels: list, texts: list) -> str:
    """The SDPO user prompt: question, a blank line, `L: text` per option, then the reasoning request."""
    options = "\n".join(f"{label}: {text}" for label, text in zip(labels, texts))
    return f"{question}\n\n{options}{USER_SUFFIX}"


def is_l3_mcq(hf_row: dict) -> bool:
    """The SDPO filter: level L3 and a 4- or 2-choice multiple-choice type."""
    details = hf_row.get("details") or {}
    return details.get("level") == HF_LEVEL and hf_row.get("type") in HF_MCQ_TYPES


def hf_row_to_split_row(hf_row: dict, idx: int) -> dict:
    """A `hicai-zju/SciKnowEval` row → the SDPO split row format. KeyError names a missing HF field."""
    choices = hf_row["choices"]
    labels, texts = list(choices["label"]), list(choices["text"])
    if len(labels) != len(texts) or not labels:
        raise ValueError(f"SciKnowEval row {idx}: {len(labels)} labels for {len(texts)} option texts")
    return {
        "idx": idx,
        "kind": "mcq",
        "dataset": DATA_SOURCE,
        "answer": hf_row["answerKey"],
        "prompt": format_hf_question(hf_row["question"], labels, texts),
        "description": hf_row["question"] + DESCRIPTION_SUFFIX,
        "system": SYSTEM_PROMPT,
    }


def split_train_test(n_rows: int) -> tuple[list[int], list[int]]:
    """(train positions, test positions) of `datasets`' 90/10 split with seed 42, the SDPO `split_tasks.py` call."""
    from datasets import Dataset

    parts = Dataset.from_dict({"position": list(range(n_rows))}).train_test_split(
        test_size=SPLIT_TEST_SIZE, seed=SPLIT_SEED)
    return list(parts["train"]["position"]), list(parts["test"]["position"])


def load_hf_rows(task: str) -> list[dict]:
    """All rows of the task's HF config (network). Raises RuntimeError with the reason when it cannot download."""
    try:
        from datasets import load_dataset

        return list(load_dataset(HF_DATASET, HF_CONFIGS[task], split="test"))
    except Exception as err:  # noqa: BLE001 - any failure here is reported with its cause and the way out
        raise RuntimeError(
            f"could not load {HF_DATASET} (config {HF_CONFIGS[task]!r}) from the Hugging Face hub: "
            f"{type(err).__name__}: {err}. This path needs internet access; offline, use --local with the SDPO "
            "split files (sdpo_splits/sciknoweval/<task>/{train,test}.json)."
        ) from err


def hf_source(task: str) -> str:
    """How messages name the Hugging Face source of one task (a string: a Path would collapse the ``//``)."""
    return f"hf://{HF_DATASET}/{HF_CONFIGS[task]}"


def rows_from_hf(task: str, hf_rows: list[dict], screen: RowScreen | None = None) -> dict[str, list[dict]]:
    """Filter, number, split and convert the HF rows of one task into verl rows by split. Messages name a row by
    its number in the filtered list, 1-based (the SDPO idx + 1); `screen` as in `read_local_split`."""
    selected = [row for row in hf_rows if is_l3_mcq(row)]
    split_rows = [hf_row_to_split_row(row, idx) for idx, row in enumerate(selected)]
    train_positions, test_positions = split_train_test(len(split_rows))
    source = hf_source(task)
    screen = screen or RowScreen()
    out = {}
    for split, positions in (("train", train_positions), ("test", test_positions)):
        numbered = screen_rows(source, [(split_rows[pos]["idx"] + 1, split_rows[pos]) for pos in positions], screen)
        out[split] = [split_row_to_verl(source, line, row, task, split, index)
                      for index, (line, row) in enumerate(numbered)]
    return out
