"""Data preparation of the five benchmarks into verl parquet (SRPO_SPEC §2 Table 4, §5.4; issue 5)."""

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
PAPER_COUNTS = {"chemistry": (1890, 210), "physics": (720, 80), "biology": (450, 50), "material": (841, 94)}


def _load_script(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "data" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepared_sciknoweval(splits_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("sciknoweval")
    assert _load_script("prepare_sciknoweval").main(["--local", str(splits_root), "--out", str(out)]) == 0
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

@pytest.mark.parametrize("task", list(PAPER_COUNTS))
def test_sciknoweval_parquet_counts_schema_and_verbatim_prompts(task, splits_root, prepared_sciknoweval, capsys):
    for split, expected in zip(("train", "test"), PAPER_COUNTS[task]):
        frame = pd.read_parquet(prepared_sciknoweval / task / f"{split}.parquet")
        assert len(frame) == expected
        _check_verl_schema(frame, "sciknoweval", split)
        source_rows = load_jsonl(splits_root / "sciknoweval" / task / f"{split}.json")
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


def test_sciknoweval_script_prints_the_counts(splits_root, tmp_path, capsys):
    script = _load_script("prepare_sciknoweval")
    assert script.main(["--local", str(splits_root), "--out", str(tmp_path), "--tasks", "biology,physics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {tuple(line.split()[:2]): line.split()[2:4] for line in lines[1:]}
    assert table == {("biology", "train"): ["450", "450"], ("biology", "test"): ["50", "50"],
                     ("physics", "train"): ["720", "720"], ("physics", "test"): ["80", "80"]}


def test_prepared_rows_score_with_their_own_ground_truth(prepared_sciknoweval):
    frame = pd.read_parquet(prepared_sciknoweval / "biology" / "test.parquet")
    for row in frame.itertuples(index=False):
        gold = row.reward_model["ground_truth"]
        assert compute_score(row.data_source, f"<answer>{gold}</answer>", gold, dict(row.extra_info))["score"] == 1.0


def _copy_split_tree(splits_root, dest, task="biology"):
    for split in ("train", "test"):
        target = dest / "sciknoweval" / task / f"{split}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((splits_root / "sciknoweval" / task / f"{split}.json").read_text(encoding="utf-8"))
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
    (lambda d: _rewrite_line(d / "test.json", 50, lambda line: ""), r"biology/test: 49 rows from .*, the paper's table has 50"),
])
def test_missing_or_malformed_split_fails_naming_file_line_and_field(breakage, message, splits_root, tmp_path, capsys):
    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    breakage(task_dir)
    script = _load_script("prepare_sciknoweval")
    assert script.main(["--local", str(tmp_path / "splits"), "--out", str(tmp_path / "out"), "--tasks", "biology"]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (tmp_path / "out" / "biology" / "train.parquet").exists()  # nothing half-written


def test_count_check_can_be_waived_for_a_deliberately_different_split(splits_root, tmp_path):
    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    _rewrite_line(task_dir / "test.json", 50, lambda line: "")
    script = _load_script("prepare_sciknoweval")
    argv = ["--local", str(tmp_path / "splits"), "--out", str(tmp_path / "out"), "--tasks", "biology", "--no-count-check"]
    assert script.main(argv) == 0
    assert len(pd.read_parquet(tmp_path / "out" / "biology" / "test.parquet")) == 49


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
    argv = ["--local", str(tmp_path / "splits"), "--out", str(tmp_path / "out"), "--tasks", "biology", *extra]
    code = _load_script("prepare_sciknoweval").main(argv)
    captured = capsys.readouterr()
    return code, captured.err.splitlines(), captured.out


def test_invalid_utf8_is_one_line_naming_file_line_field_and_column(splits_root, tmp_path, capsys):
    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    column = _break_utf8(task_dir / "test.json", 4, "prompt")
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert code == 1
    assert err == [f"error: {task_dir / 'test.json'}:4: field 'prompt' is not valid UTF-8 (byte 0xff at column {column})"]
    assert not (tmp_path / "out").exists()


def test_invalid_utf8_from_the_command_line_exits_1_without_a_traceback(splits_root, tmp_path):
    import subprocess
    import sys

    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
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
def test_malformed_mcq_rows_are_refused_with_one_line(mutate, line, message, splits_root, tmp_path, capsys):
    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    _rewrite_line(task_dir / "test.json", line, mutate)
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert (code, err) == (1, [f"error: {task_dir / 'test.json'}:{line}: {message}"])


def test_duplicate_rows_are_dropped_and_counted_or_refused_under_strict(splits_root, tmp_path, capsys):
    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    train = task_dir / "train.json"
    _append_line(train, _line(train, 3))  # idx 164 again, same content: line 451
    _append_line(train, _line(train, 7))  # line 452
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert code == 0
    assert err == [f"warning: {train}: dropped 2 rows: duplicates of an earlier row (same idx and content) "
                   "(--strict refuses them)"]
    frame = pd.read_parquet(tmp_path / "out" / "biology" / "train.parquet")
    assert len(frame) == 450 and frame["extra_info"].map(lambda e: e["source_idx"]).is_unique
    assert list(frame["extra_info"].map(lambda e: e["index"])) == list(range(450))
    code, err, _ = _run_sciknoweval(tmp_path, capsys, "--strict")
    assert (code, err) == (1, [f"error: {train}:451: field 'idx' 164: the same row as line 3{REFUSAL_HINT}"])


def test_a_repeated_idx_with_other_content_is_refused(splits_root, tmp_path, capsys):
    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    train = task_dir / "train.json"
    _append_line(train, _set_field("answer", "A" if json.loads(_line(train, 3))["answer"] != "A" else "B")(
        _line(train, 3)))
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert (code, err) == (1, [f"error: {train}:451: field 'idx' 164 is already used by line 3 for a different row"])


def test_a_row_in_both_train_and_test_is_refused(splits_root, tmp_path, capsys):
    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    _rewrite_line(task_dir / "train.json", 1, lambda line: _line(task_dir / "test.json", 1))  # idx 473
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert (code, err) == (1, [f"error: biology: the train and the test split of {tmp_path / 'splits'}/sciknoweval/"
                               "biology share 1 idx value(s), the first 473; a test row seen in training inflates "
                               "the test score"])


#: a corrupted row's prompt: twice the default bound (the reader has no line-size limit of its own, so a 50 MB row
#: takes the same path; 2 MB instead of 50 MB cut this test from ~6 s to ~0.5 s)
OVERLONG_CHARS = 2 * 1_000_000


def test_an_overlong_prompt_is_dropped_and_counted_or_refused_under_strict(splits_root, tmp_path, capsys):
    from srpo_verl.data.splits import MAX_PROMPT_CHARS

    assert OVERLONG_CHARS >= 2 * MAX_PROMPT_CHARS
    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    test = task_dir / "test.json"
    row = json.loads(_line(test, 1))
    _append_line(test, json.dumps(dict(row, idx=99999, prompt="Which one?\n\nA: x\nB: " + "y" * OVERLONG_CHARS)))
    chars = len(json.loads(_line(test, 51))["prompt"]) + len(row["system"])
    code, err, _ = _run_sciknoweval(tmp_path, capsys)
    assert code == 0
    assert err == [f"warning: {test}: dropped 1 row: prompt longer than 1,000,000 characters (--strict refuses them)"]
    assert len(pd.read_parquet(tmp_path / "out" / "biology" / "test.parquet")) == 50
    code, err, _ = _run_sciknoweval(tmp_path, capsys, "--strict")
    assert (code, err) == (1, [f"error: {test}:51: fields 'prompt' and 'system' hold {chars:,} characters, over the "
                               f"1,000,000-character bound (--max-prompt-chars){REFUSAL_HINT}"])


def test_the_prompt_bound_is_a_flag_and_counts_prompt_and_system(splits_root, tmp_path, capsys):
    from srpo_verl.data.splits import RowScreen

    _copy_split_tree(splits_root, tmp_path / "splits")
    rows = sciknoweval.read_local_split(tmp_path / "splits", "biology", "test")
    lengths = [sum(len(m["content"]) for m in row["prompt"]) for row in rows]
    longest = max(lengths)
    assert longest == 944 + len(sciknoweval.SYSTEM_PROMPT) and lengths.count(longest) == 10
    screen = RowScreen(strict=False, max_prompt_chars=longest - 1)
    assert len(sciknoweval.read_local_split(tmp_path / "splits", "biology", "test", screen)) == 40
    assert screen.summary() == [f"{tmp_path / 'splits'}/sciknoweval/biology/test.json: dropped 10 rows: prompt "
                                f"longer than {longest - 1:,} characters (--strict refuses them)"]
    screen = RowScreen(strict=False, max_prompt_chars=longest)
    assert len(sciknoweval.read_local_split(tmp_path / "splits", "biology", "test", screen)) == 50
    with pytest.raises(SystemExit) as usage_error:  # argparse's usage error, status 2
        _run_sciknoweval(tmp_path, capsys, "--max-prompt-chars", "0")
    assert usage_error.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "error: --max-prompt-chars must be a positive number of characters, got 0")


def test_library_readers_refuse_rather_than_drop_by_default(splits_root, tmp_path):
    from srpo_verl.data.splits import SplitError

    task_dir = _copy_split_tree(splits_root, tmp_path / "splits")
    _append_line(task_dir / "test.json", _line(task_dir / "test.json", 1))
    with pytest.raises(SplitError, match=r"test\.json:51: field 'idx' 473: the same row as line 1 \(refused"):
        sciknoweval.read_local_split(tmp_path / "splits", "biology", "test")


def test_the_paper_splits_share_one_materials_question_under_two_idx(splits_root):
    """Kept as the paper's split (docs/TASKS.md): the check across splits is by idx, not by prompt text."""
    shared = []
    train = {row["prompt"]: row for row in load_jsonl(splits_root / "sciknoweval" / "material" / "train.json")}
    for row in load_jsonl(splits_root / "sciknoweval" / "material" / "test.json"):
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


@pytest.mark.parametrize("task", list(PAPER_COUNTS))
def test_hf_formatting_and_split_reproduce_the_sdpo_rows(task, splits_root):
    """Rebuild HF-style rows (question, choices, answerKey, details, type) from the SDPO rows, add rows the filter
    must drop, and run the from-HF path: it must give back the SDPO train/test rows exactly, in order."""
    by_idx = {}
    for split in ("train", "test"):
        for row in load_jsonl(splits_root / "sciknoweval" / task / f"{split}.json"):
            by_idx[row["idx"]] = row
    hf_rows = []
    for idx in sorted(by_idx):
        row = by_idx[idx]
        question = row["description"][: -len(sciknoweval.DESCRIPTION_SUFFIX)]
        labels, texts = _split_options(row["prompt"], question)
        hf_rows.append({"question": question, "choices": {"label": labels, "text": texts}, "answerKey": row["answer"],
                        "type": "mcq-2-choices" if len(labels) == 2 else "mcq-4-choices",
                        "domain": sciknoweval.HF_CONFIGS[task], "details": {"level": "L3"}})
        if idx % 100 == 0:  # rows of other levels and types, which the SDPO filter drops
            hf_rows.append(dict(hf_rows[-1], details={"level": "L2"}))
            hf_rows.append(dict(hf_rows[-2], type="true_or_false"))
    rebuilt = sciknoweval.rows_from_hf(task, hf_rows)
    for split in ("train", "test"):
        expected = sciknoweval.read_local_split(splits_root, task, split)
        assert len(rebuilt[split]) == PAPER_COUNTS[task][split == "test"]
        assert rebuilt[split] == expected


@pytest.mark.parametrize("task, n_rows", [("chemistry", 2100), ("physics", 800), ("biology", 500), ("material", 935)])
def test_datasets_90_10_seed_42_split_matches_the_sdpo_files(task, n_rows, splits_root):
    train, test = sciknoweval.split_train_test(n_rows)
    assert train == [row["idx"] for row in load_jsonl(splits_root / "sciknoweval" / task / "train.json")]
    assert test == [row["idx"] for row in load_jsonl(splits_root / "sciknoweval" / task / "test.json")]


def test_from_hf_offline_fails_with_a_clear_message(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'hicai-zju/SciKnowEval' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"could not load hicai-zju/SciKnowEval \(config 'Chemistry'\).*--local"):
        sciknoweval.load_hf_rows("chemistry")


# ---- tool use -----------------------------------------------------------------------------------------------------

def test_tooluse_test_split_counts_schema_and_default_system_prompt(splits_root, tmp_path, capsys):
    script = _load_script("prepare_tooluse")
    assert script.main(["--local", str(splits_root), "--out", str(tmp_path), "--splits", "test"]) == 0
    assert "tooluse    test       68     68" in capsys.readouterr().out
    frame = pd.read_parquet(tmp_path / "tooluse" / "test.parquet")
    assert len(frame) == 68
    _check_verl_schema(frame, "tooluse", "test")
    source_rows = load_jsonl(splits_root / "tooluse" / "test.json")
    for row, source in zip(frame.itertuples(index=False), source_rows):
        assert list(row.prompt) == [{"role": "system", "content": tooluse.SRPO_SYSTEM_PROMPT},
                                    {"role": "user", "content": source["prompt"]}]
        assert row.reward_model["ground_truth"] == source["answer"] and row.ability == "tooluse"


def test_tooluse_sdpo_system_prompt_choice_uses_the_rows_own(splits_root, tmp_path):
    script = _load_script("prepare_tooluse")
    argv = ["--local", str(splits_root), "--out", str(tmp_path), "--splits", "test", "--system-prompt", "sdpo"]
    assert script.main(argv) == 0
    frame = pd.read_parquet(tmp_path / "tooluse" / "test.parquet")
    assert all([m["role"] for m in p] == ["user"] for p in frame["prompt"])  # every SDPO row has system null


def test_tooluse_missing_train_split_names_the_way_out(splits_root, tmp_path, capsys):
    assert _load_script("prepare_tooluse").main(["--local", str(splits_root), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "missing split file" in err and "tooluse/train.json" in err and "--splits test" in err


def _write_small_tooluse_tree(root, splits_root, n_train=5):
    """A train file in the SDPO format (rows derived from real test rows) next to the real test file."""
    (root / "tooluse").mkdir(parents=True)
    test_rows = load_jsonl(splits_root / "tooluse" / "test.json")
    train_rows = [dict(row, idx=i) for i, row in enumerate(test_rows[:n_train])]
    (root / "tooluse" / "train.json").write_text("".join(json.dumps(r) + "\n" for r in train_rows), encoding="utf-8")
    (root / "tooluse" / "test.json").write_text((splits_root / "tooluse" / "test.json").read_text(encoding="utf-8"))
    return root


def test_tooluse_small_train_file_needs_the_count_waiver(splits_root, tmp_path, capsys):
    root = _write_small_tooluse_tree(tmp_path / "splits", splits_root)
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
def test_tooluse_malformed_rows_fail_naming_line_and_field(mutate, message, splits_root, tmp_path, capsys):
    root = _write_small_tooluse_tree(tmp_path / "splits", splits_root)
    _rewrite_line(root / "tooluse" / "train.json", 2, mutate)
    argv = ["--local", str(root), "--out", str(tmp_path / "out"), "--no-count-check"]
    assert _load_script("prepare_tooluse").main(argv) == 1
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("answer, message", [
    ("[]", "tooluse ground_truth is an empty list of calls: no completion can score on it"),
    ('[{"Action": "", "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action is empty"),
    ('[{"Action": 5, "Action_Input": "{}"}]', "tooluse ground_truth call 0 Action must be a string, got int"),
])
def test_tooluse_gold_lists_no_completion_can_match_are_refused(answer, message, splits_root, tmp_path, capsys):
    root = _write_small_tooluse_tree(tmp_path / "splits", splits_root)
    _rewrite_line(root / "tooluse" / "train.json", 2, _set_field("answer", answer))
    argv = ["--local", str(root), "--out", str(tmp_path / "out"), "--no-count-check"]
    assert _load_script("prepare_tooluse").main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {root / 'tooluse' / 'train.json'}:2: field 'answer' is not a valid gold call list: {message}"]


def test_tooluse_duplicates_and_invalid_utf8(splits_root, tmp_path, capsys):
    root = _write_small_tooluse_tree(tmp_path / "splits", splits_root)
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


@pytest.mark.parametrize("task, split, rows, roles", [
    ("biology", "test", 50, ["system", "user"]),
    ("tooluse", "test", 68, ["system", "user"]),
])
def test_verl_rlhf_dataset_reads_the_prepared_parquet(task, split, rows, roles, splits_root, prepared_sciknoweval,
                                                      tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    if task == "tooluse":
        assert _load_script("prepare_tooluse").main(["--local", str(splits_root), "--out", str(tmp_path),
                                                     "--splits", "test"]) == 0
        path = tmp_path / "tooluse" / "test.parquet"
    else:
        path = prepared_sciknoweval / task / f"{split}.parquet"
    config = OmegaConf.create({"max_prompt_length": 4096, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": 1, "cache_dir": str(tmp_path / "cache"),
                               "apply_chat_template_kwargs": {"enable_thinking": False}})
    dataset = RLHFDataset([str(path)], _tiny_chat_tokenizer(), config)
    assert len(dataset) == rows
    item = dataset[3]
    assert [m["role"] for m in item["raw_prompt"]] == roles
    assert item["data_source"] == task.replace("biology", "sciknoweval") and item["index"] == 3
    result = compute_score(item["data_source"], "<answer>Z</answer>", item["reward_model"]["ground_truth"],
                           item["extra_info"])
    assert result["score"] == 0.0
