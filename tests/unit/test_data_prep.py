"""Data preparation of the five benchmarks into verl parquet (SRPO_SPEC §2 Table 4, §5.4).

`sample_splits` is the repository's sample of the SDPO split files; `splits` is that sample and, when SRPO_VERL_SPLITS
names them, the full splits (tests/conftest.py)."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from srpo_verl.data import sciknoweval, tooluse
from srpo_verl.data.parquet import VERL_COLUMNS
from srpo_verl.jsonl import load_jsonl
from srpo_verl.rewards import compute_score

REPO = Path(__file__).resolve().parents[2]
TASKS = ("chemistry", "physics", "biology", "material")


def _load_script(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepared_sciknoweval(splits, tmp_path_factory):
    out = tmp_path_factory.mktemp("sciknoweval")
    argv = ["--local", str(splits.root), "--out", str(out), *splits.count_args]
    assert _load_script("prepare_sciknoweval").main(argv) == 0
    return out


def _check_verl_schema(frame, data_source, split):
    assert tuple(frame.columns) == VERL_COLUMNS
    assert set(frame["data_source"]) == {data_source}
    for position, row in enumerate(frame.itertuples(index=False)):
        messages = list(row.prompt)
        assert [m["role"] for m in messages][-1] == "user" and all(set(m) == {"role", "content"} for m in messages)
        assert row.reward_model["style"] == "rule" and isinstance(row.reward_model["ground_truth"], str)
        assert row.extra_info["split"] == split and row.extra_info["index"] == position


# ---- SciKnowEval ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_sciknoweval_parquet_counts_schema_and_verbatim_prompts(task, splits, prepared_sciknoweval, capsys):
    for split, expected in zip(("train", "test"), splits.counts[task]):
        frame = pd.read_parquet(prepared_sciknoweval / task / f"{split}.parquet")
        assert len(frame) == expected
        _check_verl_schema(frame, "sciknoweval", split)
        source_rows = load_jsonl(splits.root / "sciknoweval" / task / f"{split}.json")
        assert len(source_rows) == expected
        for row, source in zip(frame.itertuples(index=False), source_rows):
            system, user = list(row.prompt)
            assert system == {"role": "system", "content": source["system"]}
            assert user == {"role": "user", "content": source["prompt"]}
            assert row.reward_model["ground_truth"] == source["answer"]
            assert row.extra_info["source_idx"] == source["idx"] and row.extra_info["task"] == task
            assert row.ability == "mcq"
        # the prompts the paper measured with: newline at both ends of the system text, the reasoning request last
        assert all(list(p)[0]["content"] == sciknoweval.SYSTEM_PROMPT for p in frame["prompt"])
        assert sciknoweval.SYSTEM_PROMPT.startswith("\n") and sciknoweval.SYSTEM_PROMPT.endswith("\n")
        assert all(list(p)[1]["content"].endswith("\nPlease reason step by step.") for p in frame["prompt"])


def test_sciknoweval_script_prints_the_counts(splits, tmp_path, capsys):
    script = _load_script("prepare_sciknoweval")
    argv = ["--local", str(splits.root), "--out", str(tmp_path), "--tasks", "biology,physics", *splits.count_args]
    assert script.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {tuple(line.split()[:2]): line.split()[2:4] for line in lines[1:]}
    assert table == {(task, split): [str(splits.counts[task][i]), str(splits.paper[task][i])]
                     for task in ("biology", "physics") for i, split in enumerate(("train", "test"))}
    if splits.kind == "full":
        assert table[("biology", "train")] == ["450", "450"] and table[("physics", "test")] == ["80", "80"]


def test_prepared_rows_score_with_their_own_ground_truth(prepared_sciknoweval):
    frame = pd.read_parquet(prepared_sciknoweval / "biology" / "test.parquet")
    for row in frame.itertuples(index=False):
        gold = row.reward_model["ground_truth"]
        assert compute_score(row.data_source, f"<answer>{gold}</answer>", gold, dict(row.extra_info))["score"] == 1.0


def _copy_split_tree(source_root, dest, task="biology"):
    """The biology files of `source_root` (the sample: train 24 rows, test 8) copied under `dest`, to break."""
    for split in ("train", "test"):
        target = dest / "sciknoweval" / task / f"{split}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((source_root / "sciknoweval" / task / f"{split}.json").read_text(encoding="utf-8"))
    return dest / "sciknoweval" / task


def _rewrite_line(path, line_number, mutate):
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_number - 1] = mutate(lines[line_number - 1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _drop_field(field):
    def mutate(line):
        row = json.loads(line)
        del row[field]
        return json.dumps(row)
    return mutate


def _set_field(field, value):
    def mutate(line):
        row = json.loads(line)
        row[field] = value
        return json.dumps(row)
    return mutate


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "test.json").unlink(), r"missing split file: .*biology/test\.json"),
    (lambda d: _rewrite_line(d / "train.json", 7, lambda line: line[:-20]), r"biology/train\.json:7: not valid JSON"),
    (lambda d: _rewrite_line(d / "test.json", 3, _drop_field("system")), r"biology/test\.json:3: field 'system' is missing"),
    (lambda d: _rewrite_line(d / "test.json", 5, _set_field("answer", "E")),
     r"biology/test\.json:5: field 'answer' must be one of \('A', 'B', 'C', 'D'\), got 'E'"),
    (lambda d: _rewrite_line(d / "train.json", 2, _set_field("prompt", "  ")), r"biology/train\.json:2: field 'prompt' is empty"),
    (lambda d: _rewrite_line(d / "train.json", 9, _set_field("idx", "9")), r"biology/train\.json:9: field 'idx' must be int"),
    (lambda d: _rewrite_line(d / "train.json", 1, lambda line: "[1, 2]"), r"biology/train\.json:1: expected a JSON object, got list"),
    (lambda d: (d / "test.json").write_text(""), r"biology/test\.json: the split file is empty"),
    (lambda d: None, r"biology/train: 24 rows from .*, the paper's table has 450"),  # the sample itself
])
def test_missing_or_malformed_split_fails_naming_file_line_and_field(breakage, message, sample_splits, tmp_path, capsys):
    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    breakage(task_dir)
    script = _load_script("prepare_sciknoweval")
    assert script.main(["--local", str(tmp_path / "splits"), "--out", str(tmp_path / "out"), "--tasks", "biology"]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (tmp_path / "out" / "biology" / "train.parquet").exists()  # nothing half-written


def test_count_check_can_be_waived_for_a_deliberately_different_split(sample_splits, tmp_path):
    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    _rewrite_line(task_dir / "test.json", 8, lambda line: "")
    script = _load_script("prepare_sciknoweval")
    argv = ["--local", str(tmp_path / "splits"), "--out", str(tmp_path / "out"), "--tasks", "biology"]
    assert script.main(argv) == 1
    assert script.main([*argv, "--no-count-check"]) == 0
    assert len(pd.read_parquet(tmp_path / "out" / "biology" / "test.parquet")) == 7


# ---- rows refused or dropped (issue 12 §3; docs/TASKS.md "What is refused, what is dropped") ----------------------

REFUSAL_HINT = " (refused under --strict; without it such rows are dropped and counted)"


def _append_line(path, line):
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def _line(path, line_number):
    return path.read_text(encoding="utf-8").splitlines()[line_number - 1]


def _break_utf8(path, line_number, field):
    """Put the byte 0xff right after the opening quote of `field` on `line_number`; returns its 1-based column."""
    lines = path.read_bytes().split(b"\n")
    cut = re.search(f'"{field}": ?"'.encode(), lines[line_number - 1]).end()
    lines[line_number - 1] = lines[line_number - 1][:cut] + b"\xff" + lines[line_number - 1][cut:]
    path.write_bytes(b"\n".join(lines))
    return len(lines[line_number - 1][:cut].decode("utf-8")) + 1


def _run_sciknoweval(tmp_path, capsys, *extra):
    argv = ["--local", str(tmp_path / "splits"), "--out", str(tmp_path / "out"), "--tasks", "biology",
            "--no-count-check", *extra]
    code = _load_script("prepare_sciknoweval").main(argv)
    captured = capsys.readouterr()
    return code, captured.err.splitlines(), captured.out


def test_invalid_utf8_is_one_line_naming_file_line_field_and_column(sample_splits, tmp_path, capsys):
    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    column = _break_utf8(task_dir / "test.json", 4, "prompt")
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert code == 1
    assert err == [f"error: {task_dir / 'test.json'}:4: field 'prompt' is not valid UTF-8 (byte 0xff at column {column})"]
    assert not (tmp_path / "out").exists()


def test_invalid_utf8_from_the_command_line_exits_1_without_a_traceback(sample_splits, tmp_path):
    import subprocess
    import sys

    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    column = _break_utf8(task_dir / "train.json", 2, "system")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "data" / "prepare_sciknoweval.py"), "--local",
                           str(tmp_path / "splits"), "--out", str(tmp_path / "out"), "--tasks", "biology"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == (f"error: {task_dir / 'train.json'}:2: field 'system' is not valid UTF-8 "
                           f"(byte 0xff at column {column})\n")


def test_invalid_utf8_outside_a_json_object_names_line_and_column(tmp_path):
    from srpo_verl.data.splits import SplitError, read_jsonl

    path = tmp_path / "rows.json"
    path.write_bytes(b'{"idx": 0}\n[1, "\xc3\x28"]\n')
    with pytest.raises(SplitError) as caught:
        read_jsonl(path)
    assert str(caught.value) == f"{path}:2: not valid UTF-8 (byte 0xc3 at column 6)"


@pytest.mark.parametrize("mutate, line, message", [
    # line 2 of biology/test.json is a 2-choice question (idx 132, answer B)
    (_set_field("answer", "D"), 2, "field 'answer' is 'D' but the prompt's options are A, B"),
    (_set_field("prompt", "Which protein folds fastest?\nPlease reason step by step."), 3,
     "field 'prompt' lists no options (lines 'A: ...', 'B: ...')"),
    (_set_field("prompt", "Pick one.\n\nA: x\nPlease reason step by step."), 3,
     "field 'prompt' lists the options A; expected A, B (2-choice) or A, B, C, D (4-choice)"),
    (_set_field("prompt", "Pick one.\n\nA: x\nC: y\nPlease reason step by step."), 3,
     "field 'prompt' lists the options A, C; expected A, B (2-choice) or A, B, C, D (4-choice)"),
    (_set_field("prompt", "Pick one.\n\nA: w\nB: x\nC: y\nD: z\nE: v\nPlease reason step by step."), 3,
     "field 'prompt' lists the options A, B, C, D, E; expected A, B (2-choice) or A, B, C, D (4-choice)"),
])
def test_malformed_mcq_rows_are_refused_with_one_line(mutate, line, message, sample_splits, tmp_path, capsys):
    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    _rewrite_line(task_dir / "test.json", line, mutate)
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert (code, err) == (1, [f"error: {task_dir / 'test.json'}:{line}: {message}"])


def test_duplicate_rows_are_dropped_and_counted_or_refused_under_strict(sample_splits, tmp_path, capsys):
    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    train = task_dir / "train.json"
    _append_line(train, _line(train, 3))  # idx 164 again, same content: line 25
    _append_line(train, _line(train, 7))  # line 26
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert code == 0
    assert err == [f"warning: {train}: dropped 2 rows: duplicates of an earlier row (same idx and content) "
                   "(--strict refuses them)"]
    frame = pd.read_parquet(tmp_path / "out" / "biology" / "train.parquet")
    assert len(frame) == 24 and frame["extra_info"].map(lambda e: e["source_idx"]).is_unique
    assert list(frame["extra_info"].map(lambda e: e["index"])) == list(range(24))
    code, err, _ = _run_sciknoweval(tmp_path, capsys, "--strict")
    assert (code, err) == (1, [f"error: {train}:25: field 'idx' 164: the same row as line 3{REFUSAL_HINT}"])


def test_a_repeated_idx_with_other_content_is_refused(sample_splits, tmp_path, capsys):
    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    train = task_dir / "train.json"
    _append_line(train, _set_field("answer", "A" if json.loads(_line(train, 3))["answer"] != "A" else "B")(
        _line(train, 3)))
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert (code, err) == (1, [f"error: {train}:25: field 'idx' 164 is already used by line 3 for a different row"])


def test_a_row_in_both_train_and_test_is_refused(sample_splits, tmp_path, capsys):
    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    _rewrite_line(task_dir / "train.json", 1, lambda line: _line(task_dir / "test.json", 1))  # idx 473
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert (code, err) == (1, [f"error: biology: the train and the test split of {tmp_path / 'splits'}/sciknoweval/"
                               "biology share 1 idx value(s), the first 473; a test row seen in training inflates "
                               "the test score"])


#: a corrupted row's prompt: twice the default bound (the reader has no line-size limit of its own, so a 50 MB row
#: takes the same path; 2 MB instead of 50 MB cut this test from ~6 s to ~0.5 s)
OVERLONG_CHARS = 2 * 1_000_000


def test_an_overlong_prompt_is_dropped_and_counted_or_refused_under_strict(sample_splits, tmp_path, capsys):
    from srpo_verl.data.splits import MAX_PROMPT_CHARS

    assert OVERLONG_CHARS >= 2 * MAX_PROMPT_CHARS
    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    test = task_dir / "test.json"
    row = json.loads(_line(test, 1))
    _append_line(test, json.dumps(dict(row, idx=99999, prompt="Which one?\n\nA: x\nB: " + "y" * OVERLONG_CHARS)))
    chars = len(json.loads(_line(test, 9))["prompt"]) + len(row["system"])
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert code == 0
    assert err == [f"warning: {test}: dropped 1 row: prompt longer than 1,000,000 characters (--strict refuses them)"]
    assert len(pd.read_parquet(tmp_path / "out" / "biology" / "test.parquet")) == 8
    code, err, _ = _run_sciknoweval(tmp_path, capsys, "--strict")
    assert (code, err) == (1, [f"error: {test}:9: fields 'prompt' and 'system' hold {chars:,} characters, over the "
                               f"1,000,000-character bound (--max-prompt-chars){REFUSAL_HINT}"])


def test_the_prompt_bound_is_a_flag_and_counts_prompt_and_system(sample_splits, tmp_path, capsys):
    from srpo_verl.data.splits import RowScreen

    _copy_split_tree(sample_splits, tmp_path / "splits")
    rows = sciknoweval.read_local_split(tmp_path / "splits", "biology", "test")
    lengths = [sum(len(m["content"]) for m in row["prompt"]) for row in rows]
    longest = max(lengths)
    assert longest == 944 + len(sciknoweval.SYSTEM_PROMPT) and lengths.count(longest) == 1
    screen = RowScreen(strict=False, max_prompt_chars=longest - 1)
    assert len(sciknoweval.read_local_split(tmp_path / "splits", "biology", "test", screen)) == 7
    assert screen.summary() == [f"{tmp_path / 'splits'}/sciknoweval/biology/test.json: dropped 1 row: prompt "
                                f"longer than {longest - 1:,} characters (--strict refuses them)"]
    screen = RowScreen(strict=False, max_prompt_chars=longest)
    assert len(sciknoweval.read_local_split(tmp_path / "splits", "biology", "test", screen)) == 8
    with pytest.raises(SystemExit) as usage_error:  # argparse's usage error, status 2
        _run_sciknoweval(tmp_path, capsys, "--max-prompt-chars", "0")
    assert usage_error.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "error: --max-prompt-chars must be a positive number of characters, got 0")


def test_library_readers_refuse_rather_than_drop_by_default(sample_splits, tmp_path):
    from srpo_verl.data.splits import SplitError

    task_dir = _copy_split_tree(sample_splits, tmp_path / "splits")
    _append_line(task_dir / "test.json", _line(task_dir / "test.json", 1))
    with pytest.raises(SplitError, match=r"test\.json:9: field 'idx' 473: the same row as line 1 \(refused"):
        sciknoweval.read_local_split(tmp_path / "splits", "biology", "test")


def test_the_paper_splits_share_one_materials_question_under_two_idx(splits):
    """Kept as the paper's split (docs/TASKS.md): the check across splits is by idx, not by prompt text. The sample
    holds both rows."""
    shared = []
    train = {row["prompt"]: row for row in load_jsonl(splits.root / "sciknoweval" / "material" / "train.json")}
    for row in load_jsonl(splits.root / "sciknoweval" / "material" / "test.json"):
        if row["prompt"] in train:
            shared.append((train[row["prompt"]]["idx"], row["idx"], train[row["prompt"]]["answer"], row["answer"]))
    assert shared == [(377, 365, "B", "B")]


# ---- SciKnowEval from Hugging Face (offline checks of the same code path) ----------------------------------------

def _split_options(prompt, question):
    """Recover (labels, texts) from an SDPO user prompt, the inverse of `format_hf_question`."""
    body = prompt[len(question) + 2: -len(sciknoweval.USER_SUFFIX)]
    labels, texts, rest = [], [], body
    assert rest.startswith("A: ")
    for label, following in (("A", "B"), ("B", "C"), ("C", "D"), ("D", None)):
        if not rest.startswith(f"{label}: "):
            break
        rest = rest[len(label) + 2:]
        cut = rest.find(f"\n{following}: ") if following else -1
        labels.append(label)
        texts.append(rest if cut < 0 else rest[:cut])
        if cut < 0:
            break
        rest = rest[cut + 1:]
    return labels, texts


def _hf_rows(task, root, n_source):
    """What `load_dataset` gives for one task, rebuilt for the SDPO rows under `root`: the HF-style row (question,
    choices, answerKey, type, details) of each SDPO row at the position its idx numbers, a made-up L3 question at
    every other position of the task's `n_source` L3 MCQ rows, and after every 100th position two rows the SDPO
    filter drops (another level, another type). Returns (hf_rows, the SDPO rows by idx)."""
    by_idx = {}
    for split in ("train", "test"):
        for row in load_jsonl(root / "sciknoweval" / task / f"{split}.json"):
            by_idx[row["idx"]] = row
    hf_rows = []
    for idx in range(n_source):
        row = by_idx.get(idx)
        if row is None:
            question, labels, texts, answer = f"Made-up question {idx}?", list("ABCD"), list("wxyz"), "A"
        else:
            question = row["description"][: -len(sciknoweval.DESCRIPTION_SUFFIX)]
            (labels, texts), answer = _split_options(row["prompt"], question), row["answer"]
        hf_rows.append({"question": question, "choices": {"label": labels, "text": texts}, "answerKey": answer,
                        "type": "mcq-2-choices" if len(labels) == 2 else "mcq-4-choices",
                        "domain": sciknoweval.HF_CONFIGS[task], "details": {"level": "L3"}})
        if idx % 100 == 0:
            hf_rows.append(dict(hf_rows[-1], details={"level": "L2"}))
            hf_rows.append(dict(hf_rows[-2], type="true_or_false"))
    return hf_rows, by_idx


def _without_index(rows):
    """verl rows without extra_info's `index` (the position in the file, which a sample renumbers)."""
    return [dict(row, extra_info={k: v for k, v in row["extra_info"].items() if k != "index"}) for row in rows]


@pytest.mark.parametrize("task", TASKS)
def test_hf_formatting_and_split_reproduce_the_sdpo_rows(task, splits):
    """Run the from-HF path on HF-style rows rebuilt from the SDPO rows: each SDPO row comes back in its split, in
    file order, with the same prompt, system text and answer (the full splits: the files exactly)."""
    hf_rows, by_idx = _hf_rows(task, splits.root, sum(splits.paper[task]))
    rebuilt = sciknoweval.rows_from_hf(task, hf_rows)
    for split, paper_count in zip(("train", "test"), splits.paper[task]):
        expected = sciknoweval.read_local_split(splits.root, task, split)
        assert len(rebuilt[split]) == paper_count
        kept = [row for row in rebuilt[split] if row["extra_info"]["source_idx"] in by_idx]
        assert len(kept) == len(expected) and _without_index(kept) == _without_index(expected)
        if splits.kind == "full":
            assert rebuilt[split] == expected


@pytest.mark.parametrize("task", TASKS)
def test_datasets_90_10_seed_42_split_matches_the_sdpo_files(task, splits):
    """The SDPO files list `split_train_test(source rows)` in its order: all of it (the full splits), or its first
    positions and then, for material, the one more row the sample keeps."""
    train, test = sciknoweval.split_train_test(sum(splits.paper[task]))
    for positions, split, sample_head in ((train, "train", 24), (test, "test", 8)):
        file_idx = [row["idx"] for row in load_jsonl(splits.root / "sciknoweval" / task / f"{split}.json")]
        head = len(positions) if splits.kind == "full" else sample_head
        assert file_idx[:head] == positions[:head]
        kept = set(file_idx)
        assert [position for position in positions if position in kept] == file_idx


def test_from_hf_script_parses_what_load_dataset_gives(sample_splits, tmp_path, monkeypatch, capsys):
    """`--from-hf` end to end with `datasets.load_dataset` answering from the sample (no network): it asks for the
    task's config of the test split, and every sample row comes out as `--local` writes it."""
    import datasets

    asked = []

    def load_dataset(name, config, split):
        asked.append((name, config, split))
        task = next(task for task, hf_config in sciknoweval.HF_CONFIGS.items() if hf_config == config)
        return datasets.Dataset.from_list(_hf_rows(task, sample_splits, sum(sciknoweval.EXPECTED_COUNTS[task]))[0])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    script = _load_script("prepare_sciknoweval")
    assert script.main(["--from-hf", "--out", str(tmp_path / "hf"), "--tasks", "biology,material"]) == 0
    assert asked == [("hicai-zju/SciKnowEval", "Biology", "test"), ("hicai-zju/SciKnowEval", "Material", "test")]
    argv = ["--local", str(sample_splits), "--out", str(tmp_path / "local"), "--tasks", "biology,material",
            "--no-count-check"]
    assert script.main(argv) == 0
    for task in ("biology", "material"):
        for split in ("train", "test"):
            local = pd.read_parquet(tmp_path / "local" / task / f"{split}.parquet").to_dict("records")
            from_hf = pd.read_parquet(tmp_path / "hf" / task / f"{split}.parquet").to_dict("records")
            assert len(from_hf) == getattr(sciknoweval.EXPECTED_COUNTS[task], split)
            sample_idx = {row["extra_info"]["source_idx"] for row in local}
            kept = [row for row in from_hf if row["extra_info"]["source_idx"] in sample_idx]
            assert len(kept) == len(local) > 0
            assert _comparable(_without_index(kept)) == _comparable(_without_index(local))


def _comparable(records):
    """Parquet records with the chat messages as a plain list (they read back as a numpy array)."""
    return [dict(record, prompt=list(record["prompt"])) for record in records]


def test_from_hf_offline_fails_with_a_clear_message(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'hicai-zju/SciKnowEval' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"could not load hicai-zju/SciKnowEval \(config 'Chemistry'\).*--local"):
        sciknoweval.load_hf_rows("chemistry")


# ---- tool use -----------------------------------------------------------------------------------------------------

def test_tooluse_test_split_counts_schema_and_default_system_prompt(splits, tmp_path, capsys):
    script = _load_script("prepare_tooluse")
    argv = ["--local", str(splits.root), "--out", str(tmp_path), "--splits", "test", *splits.count_args]
    assert script.main(argv) == 0
    rows = splits.counts["tooluse"][1]
    assert f"tooluse    test   {rows:>6}     68" in capsys.readouterr().out
    frame = pd.read_parquet(tmp_path / "tooluse" / "test.parquet")
    assert len(frame) == rows
    _check_verl_schema(frame, "tooluse", "test")
    source_rows = load_jsonl(splits.root / "tooluse" / "test.json")
    assert len(source_rows) == rows
    for row, source in zip(frame.itertuples(index=False), source_rows):
        assert list(row.prompt) == [{"role": "system", "content": tooluse.SRPO_SYSTEM_PROMPT},
                                    {"role": "user", "content": source["prompt"]}]
        assert row.reward_model["ground_truth"] == source["answer"] and row.ability == "tooluse"


def test_tooluse_sdpo_system_prompt_choice_uses_the_rows_own(splits, tmp_path):
    script = _load_script("prepare_tooluse")
    argv = ["--local", str(splits.root), "--out", str(tmp_path), "--splits", "test", "--system-prompt", "sdpo",
            *splits.count_args]
    assert script.main(argv) == 0
    frame = pd.read_parquet(tmp_path / "tooluse" / "test.parquet")
    assert len(frame) == splits.counts["tooluse"][1]
    assert all([m["role"] for m in p] == ["user"] for p in frame["prompt"])  # every SDPO row has system null


def test_from_github_script_parses_what_the_download_gives(sample_splits, tmp_path, monkeypatch):
    """`--from-github` end to end with `urlopen` answering with the sample's bytes (no network): it fetches the SDPO
    repository's file, keeps it under <out>/_downloads and writes what `--local` writes."""
    import io
    import urllib.request

    fetched = []

    def urlopen(url, timeout):
        fetched.append(url)
        return io.BytesIO((sample_splits / "tooluse" / "test.json").read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    script = _load_script("prepare_tooluse")
    common = ["--splits", "test", "--no-count-check"]
    assert script.main(["--from-github", "--out", str(tmp_path / "gh"), *common]) == 0
    assert fetched == ["https://raw.githubusercontent.com/lasgroup/SDPO/main/datasets/tooluse/test.json"]
    downloaded = tmp_path / "gh" / "_downloads" / "tooluse" / "test.json"
    assert downloaded.read_bytes() == (sample_splits / "tooluse" / "test.json").read_bytes()
    assert script.main(["--local", str(sample_splits), "--out", str(tmp_path / "local"), *common]) == 0
    from_github = pd.read_parquet(tmp_path / "gh" / "tooluse" / "test.parquet").to_dict("records")
    local = pd.read_parquet(tmp_path / "local" / "tooluse" / "test.parquet").to_dict("records")
    assert len(from_github) == 27 and _comparable(from_github) == _comparable(local)


def test_tooluse_missing_train_split_names_the_way_out(sample_splits, tmp_path, capsys):
    assert _load_script("prepare_tooluse").main(["--local", str(sample_splits), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "missing split file" in err and "tooluse/train.json" in err and "--splits test" in err


def _write_small_tooluse_tree(root, source_root, n_train=5):
    """A train file in the SDPO format (rows derived from real test rows) next to a copy of the test file."""
    (root / "tooluse").mkdir(parents=True)
    test_rows = load_jsonl(source_root / "tooluse" / "test.json")
    train_rows = [dict(row, idx=i) for i, row in enumerate(test_rows[:n_train])]
    (root / "tooluse" / "train.json").write_text("".join(json.dumps(r) + "\n" for r in train_rows), encoding="utf-8")
    (root / "tooluse" / "test.json").write_text((source_root / "tooluse" / "test.json").read_text(encoding="utf-8"))
    return root


def test_tooluse_small_train_file_needs_the_count_waiver(sample_splits, tmp_path, capsys):
    root = _write_small_tooluse_tree(tmp_path / "splits", sample_splits)
    script = _load_script("prepare_tooluse")
    assert script.main(["--local", str(root), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "tooluse/train: 5 rows from" in err and "the paper's table has 4046" in err
    assert script.main(["--local", str(root), "--out", str(tmp_path / "out"), "--no-count-check"]) == 0
    train = pd.read_parquet(tmp_path / "out" / "tooluse" / "train.parquet")
    assert len(train) == 5 and list(train["extra_info"].map(lambda e: e["source_idx"])) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("mutate, message", [
    (_set_field("answer", "[{\"Action\": \"x\"}]"), r"train\.json:2: field 'answer' is not a valid gold call list"),
    (_set_field("answer", "not json"), r"train\.json:2: field 'answer' is not a valid gold call list"),
    (_set_field("system", 3), r"train\.json:2: field 'system' must be a string or null"),
    (_drop_field("prompt"), r"train\.json:2: field 'prompt' is missing"),
])
def test_tooluse_malformed_rows_fail_naming_line_and_field(mutate, message, sample_splits, tmp_path, capsys):
    root = _write_small_tooluse_tree(tmp_path / "splits", sample_splits)
    _rewrite_line(root / "tooluse" / "train.json", 2, mutate)
    argv = ["--local", str(root), "--out", str(tmp_path / "out"), "--no-count-check"]
    assert _load_script("prepare_tooluse").main(argv) == 1
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("answer, message", [
    ("[]", "tooluse ground_truth is an empty list of calls: no completion can score on it"),
    ('[{"Action": "", "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action is empty"),
    ('[{"Action": 5, "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action must be a string, got int"),
])
def test_tooluse_gold_lists_no_completion_can_match_are_refused(answer, message, sample_splits, tmp_path, capsys):
    root = _write_small_tooluse_tree(tmp_path / "splits", sample_splits)
    _rewrite_line(root / "tooluse" / "train.json", 2, _set_field("answer", answer))
    argv = ["--local", str(root), "--out", str(tmp_path / "out"), "--no-count-check"]
    assert _load_script("prepare_tooluse").main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {root / 'tooluse' / 'train.json'}:2: field 'answer' is not a valid gold call list: {message}"]


def test_tooluse_duplicates_and_invalid_utf8(sample_splits, tmp_path, capsys):
    root = _write_small_tooluse_tree(tmp_path / "splits", sample_splits)
    train = root / "tooluse" / "train.json"
    _append_line(train, _line(train, 5))
    argv = ["--local", str(root), "--out", str(tmp_path / "out"), "--no-count-check"]
    assert _load_script("prepare_tooluse").main(argv) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {train}: dropped 1 row: duplicates of an earlier row (same idx and content) (--strict refuses them)"]
    assert len(pd.read_parquet(tmp_path / "out" / "tooluse" / "train.parquet")) == 5
    column = _break_utf8(train, 3, "prompt")
    assert _load_script("prepare_tooluse").main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {train}:3: field 'prompt' is not valid UTF-8 (byte 0xff at column {column})"]


def test_tooluse_download_offline_fails_with_a_clear_message(monkeypatch, tmp_path):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError, match=r"could not download https://raw\.githubusercontent\.com/.*--local"):
        tooluse.download_split("train", tmp_path)


# ---- verl reads the files ----------------------------------------------------------------------------------------

def _tiny_chat_tokenizer():
    """A whitespace word-level tokenizer with a chat template (no hub access needed)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "</s>": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>")
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    return tokenizer


@pytest.mark.parametrize("task, roles", [("biology", ["system", "user"]), ("tooluse", ["system", "user"])])
def test_verl_rlhf_dataset_reads_the_prepared_parquet(task, roles, splits, prepared_sciknoweval, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    if task == "tooluse":
        argv = ["--local", str(splits.root), "--out", str(tmp_path), "--splits", "test", *splits.count_args]
        assert _load_script("prepare_tooluse").main(argv) == 0
        path = tmp_path / "tooluse" / "test.parquet"
    else:
        path = prepared_sciknoweval / task / "test.parquet"
    config = OmegaConf.create({"max_prompt_length": 4096, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": 1, "cache_dir": str(tmp_path / "cache"),
                               "apply_chat_template_kwargs": {"enable_thinking": False}})
    dataset = RLHFDataset([str(path)], _tiny_chat_tokenizer(), config)
    assert len(dataset) == splits.counts[task][1]
    item = dataset[3]
    assert [m["role"] for m in item["raw_prompt"]] == roles
    assert item["data_source"] == task.replace("biology", "sciknoweval") and item["index"] == 3
    result = compute_score(item["data_source"], "<answer>Z</answer>", item["reward_model"]["ground_truth"],
                           item["extra_info"])
    assert result["score"] == 0.0


def test_the_sample_is_rows_of_the_full_split_files_byte_for_byte(sample_splits, full_splits):
    """tests/fixtures/sdpo_splits/README.md: each sample file is the first lines of its split file (24 train, 8 test,
    24 tooluse), then a few named rows further down, in file order, unchanged."""
    heads = {"train.json": 24, "test.json": 8}
    files = sorted(sample_splits.rglob("*.json"))
    assert len(files) == 9
    for path in files:
        full_lines = (full_splits / path.relative_to(sample_splits)).read_bytes().split(b"\n")
        positions = [full_lines.index(line) for line in path.read_bytes().split(b"\n")[:-1]]
        head = 24 if path.parent.name == "tooluse" else heads[path.name]
        assert positions[:head] == list(range(head)) and positions == sorted(set(positions)), path
