"""scripts/data/prepare_math.py on small local files (no hub here): verl's schema, gold answers, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from srpo_verl.data import math_sets

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "data" / "prepare_math.py"


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_local_files_become_verl_rows_scored_by_math_verify(tmp_path):
    import pandas as pd

    from srpo_verl.rewards import compute_score

    train = _jsonl(tmp_path / "train.jsonl", [{"problem": "What is 1+1?", "answer": "2"},
                                              {"problem": "Half of 1?", "solution": "So \\boxed{\\frac{1}{2}}."},
                                              {"problem": "Nested?", "solution": "\\boxed{1} then \\boxed{\\{1,{2}\\}}"}])
    test = _jsonl(tmp_path / "test.jsonl", [{"problem": "What is 2+2?", "answer": 4}])
    result = _run("--local-train", train, "--local-test", test, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(tmp_path / "out" / "math" / "train.parquet")
    assert list(frame.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert set(frame["data_source"]) == {"math_verify/MATH"}
    assert [row["ground_truth"] for row in frame["reward_model"]] == ["2", "\\frac{1}{2}", "\\{1,{2}\\}"]
    message = frame["prompt"][0][0]
    assert message["role"] == "user" and message["content"] == f"What is 1+1?\n\n{math_sets.INSTRUCTION}"
    assert [info["source_idx"] for info in frame["extra_info"]] == [1, 2, 3]  # file lines
    test_frame = pd.read_parquet(tmp_path / "out" / "math" / "test.parquet")
    assert test_frame["data_source"][0] == "math_verify/MATH-500"
    assert test_frame["reward_model"][0]["ground_truth"] == "4"
    gold = frame["reward_model"][1]["ground_truth"]
    assert compute_score(frame["data_source"][1], "It is \\boxed{0.5}.", gold)["score"] == 1.0
    assert "math  " in result.stdout and "train" in result.stdout


@pytest.mark.parametrize("train_rows, message", [
    (["{bad json"], "train.jsonl:1: not valid JSON"),
    ([{"answer": "2"}], "train.jsonl:1: field 'problem' is missing"),
    ([{"problem": "  ", "answer": "2"}], "train.jsonl:1: field 'problem' is empty"),
    ([{"problem": "p", "answer": ""}], "train.jsonl:1: field 'answer' must be a non-empty string"),
    ([{"problem": "p", "solution": "no box"}], "train.jsonl:1: field 'answer' is missing and field 'solution' has no "
                                               "closed \\boxed{...}"),
    ([{"problem": "p", "answer": "2"}, {"problem": "q", "answer": "\\text{}"}],
     "(train): row 2: gold answer '\\\\text{}' does not parse with math-verify"),
    ([{"problem": "What  is 2+2?", "answer": "4"}], "1 test problem(s) of"),
])
def test_bad_files_fail_with_one_line_and_write_nothing(tmp_path, train_rows, message):
    train = _jsonl(tmp_path / "train.jsonl", train_rows)
    test = _jsonl(tmp_path / "test.jsonl", [{"problem": "What is 2+2?", "answer": "4"}])
    result = _run("--local-train", train, "--local-test", test, "--out", tmp_path / "out")
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_missing_file_and_bad_command_lines(tmp_path):
    test = _jsonl(tmp_path / "test.jsonl", [{"problem": "p", "answer": "1"}])
    result = _run("--local-train", tmp_path / "nope.jsonl", "--local-test", test, "--out", tmp_path / "out")
    assert result.returncode == 1 and f"missing split file: {tmp_path / 'nope.jsonl'}" in result.stderr
    assert _run("--local-train", test, "--out", tmp_path / "out").returncode == 2
    assert _run("--from-hf", "--local-train", test, "--local-test", test, "--out", tmp_path).returncode == 2


def test_hub_failure_names_the_cause_and_the_offline_way(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"could not load HuggingFaceH4/MATH-500 \(split 'test'\).*ConnectionError: "
                                           r"Couldn't reach the Hub.*--local-train / --local-test"):
        math_sets.load_hf("math500")


def test_hub_rows_keep_their_fields():
    rows = math_sets.rows_from_hf("aime2024", [{"problem": "Find n.", "answer": "204", "id": 60}], "test")
    assert rows[0]["data_source"] == "math_verify/aime2024" and rows[0]["reward_model"]["ground_truth"] == "204"
    assert math_sets.last_boxed("a \\boxed{\\frac{1}{2}} b \\boxed{x^{2}}") == "x^{2}"
    assert math_sets.last_boxed("\\boxed{unclosed") is None
