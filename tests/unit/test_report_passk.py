"""avg@n / unbiased pass@k estimators and the scoring of verl validation dumps (srpo_verl.report.passk/generations)."""

import json
import math

import pytest

from srpo_verl.report import cli, generations
from srpo_verl.report.passk import mean_avg_at_n, mean_pass_at_k, unbiased_pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (4, 1, 1, 0.25),          # 1 - C(3,1)/C(4,1) = 1 - 3/4
        (4, 1, 2, 0.5),           # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 3, 0.9),           # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (16, 0, 8, 0.0),
        (16, 16, 1, 1.0),
        (16, 9, 8, 1.0),          # n - c = 7 < k: every 8-subset holds a correct sample
        (16, 3, 16, 1.0),
    ],
)
def test_unbiased_pass_at_k_hand_values(n, c, k, expected):
    assert unbiased_pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_unbiased_pass_at_k_matches_binomial_formula():
    for n in (1, 2, 7, 16):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1.0 - math.comb(n - c, k) / math.comb(n, k)
                assert unbiased_pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("n, c, k, fragment", [(4, 5, 1, "0 <= c <= n"), (4, 1, 5, "1 <= k <= n"),
                                                 (0, 0, 1, "n >= 1"), (4, 1, 0, "1 <= k <= n")])
def test_unbiased_pass_at_k_rejects_bad_arguments(n, c, k, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        unbiased_pass_at_k(n, c, k)


def test_means_over_questions():
    counts = [(4, 1), (4, 4), (4, 0)]
    assert mean_avg_at_n(counts) == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert mean_pass_at_k(counts, 2) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError, match="empty"):
        mean_avg_at_n([])


def _write_dump(path, rows):
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def _dump_rows(step, correct_by_question):
    """verl V1 `_write_generations` records: uid "{prompt uid}_{session}_{turn}", score and our reward's acc."""
    rows = []
    for q, flags in correct_by_question.items():
        for session, flag in enumerate(flags):
            rows.append({"input": f"question {q}", "output": "...", "gts": "A", "score": float(flag),
                         "step": step, "acc": float(flag), "pred": "A" if flag else "B",
                         "uid": f"{q}_{session}_0"})
    return rows


def test_read_generation_dump_groups_by_prompt_uid(tmp_path):
    dump = tmp_path / "5.jsonl"
    # uid prefixes with underscores inside must survive the rsplit
    _write_dump(dump, _dump_rows(5, {"q_a": [1, 0, 0, 0], "q_b": [1, 1, 1, 1], "q_c": [0, 0, 0, 0]}))
    counts = generations.read_generation_dump(dump)
    assert [(q.uid, q.n, q.c) for q in counts] == [("q_a", 4, 1), ("q_b", 4, 4), ("q_c", 4, 0)]
    summary = generations.summarize(counts, [1, 2, 4])
    assert summary["avg@4"] == pytest.approx(5 / 12)
    assert summary["pass@1"] == pytest.approx(5 / 12)           # pass@1 == avg@n
    assert summary["pass@2"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert summary["pass@4"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="pass@8 asked but only 4 samples"):
        generations.summarize(counts, [8])


def test_read_generation_dump_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "1.jsonl"
    bad.write_text(json.dumps({"uid": "a_0_0", "acc": 1.0}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"1\.jsonl:2: not valid JSON"):
        generations.read_generation_dump(bad)
    bad.write_text(json.dumps({"uid": "a_0_0", "acc": "yes"}) + "\n")
    with pytest.raises(ValueError, match=r"1\.jsonl:1: field 'acc' is 'yes'"):
        generations.read_generation_dump(bad)
    uneven = tmp_path / "2.jsonl"
    _write_dump(uneven, _dump_rows(2, {"a": [1, 0], "b": [1, 1, 0]}))
    with pytest.raises(ValueError, match="different sample counts"):
        generations.summarize(generations.read_generation_dump(uneven), [1])


def test_score_cli_prints_table_for_a_dump_folder(tmp_path, capsys):
    folder = tmp_path / "chemistry"
    folder.mkdir()
    _write_dump(folder / "0.jsonl", _dump_rows(0, {"a": [0, 0, 0, 0], "b": [1, 0, 0, 0]}))
    _write_dump(folder / "10.jsonl", _dump_rows(10, {"a": [1, 1, 0, 0], "b": [1, 1, 1, 1]}))
    (folder / "notes.jsonl").write_text("ignored: not a <step>.jsonl name\n")
    assert cli.score_main([str(folder), "--k", "1,2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| dump | questions | n | avg@4 | pass@1 | pass@2 |"
    # step 0: avg (0 + .25)/2 = 12.5; pass@2 = (0 + .5)/2 = 25.0
    assert out[2] == "| chemistry/0 | 2 | 4 | 12.5 | 12.5 | 25.0 |"
    # step 10: avg (.5 + 1)/2 = 75.0; pass@2 = (1 - C(2,2)/C(4,2) = 5/6, 1)/2 = 91.7
    assert out[3] == "| chemistry/10 | 2 | 4 | 75.0 | 75.0 | 91.7 |"
    assert cli.score_main([str(folder), "--k", "1", "--last"]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == ["| chemistry/10 | 2 | 4 | 75.0 | 75.0 |"]
    recipe_layout = tmp_path / "physics" / "val_generations"
    recipe_layout.mkdir(parents=True)
    _write_dump(recipe_layout / "0.jsonl", _dump_rows(0, {"a": [1, 1, 1, 0]}))
    assert cli.score_main([str(recipe_layout), "--k", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "| physics/0 | 1 | 4 | 75.0 | 100.0 |"
    assert cli.score_main([str(tmp_path / "missing")]) == 1
    assert "validation dump file or folder not found" in capsys.readouterr().err
