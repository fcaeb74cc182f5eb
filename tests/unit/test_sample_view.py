"""The per-step sample view (issue 16 §2): which samples, their records, console line, wandb rows, the dump folder."""

import json
from types import SimpleNamespace

import pytest
import torch

from srpo_verl.core.diagnostics import pick_log_samples, sample_routes, token_summary, topk_mass_gap
from srpo_verl.verl_ext import sample_log as S
from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings


def test_routes_and_round_robin_pick_are_deterministic_and_skip_padding():
    distill = torch.tensor([False, True, False, True, False, False, True])
    correct = torch.tensor([True, False, False, False, True, False, False])
    routes = sample_routes(distill, correct)
    assert routes == ["grpo_correct", "sdpo", "grpo_failed", "sdpo", "grpo_correct", "grpo_failed", "sdpo"]
    padding = torch.tensor([False, False, False, False, False, True, False])
    # sdpo, correct, failed, sdpo, correct, (no failed left: row 5 is padding), sdpo
    assert pick_log_samples(routes, padding, 7) == [1, 0, 2, 3, 4, 6]
    assert pick_log_samples(routes, padding, 4) == [1, 0, 2, 3]
    assert pick_log_samples(routes, padding, 0) == []
    only_grpo = sample_routes(torch.zeros(3, dtype=torch.bool), torch.tensor([False, False, True]))
    assert pick_log_samples(only_grpo, torch.zeros(3, dtype=torch.bool), 2) == [2, 0]


def test_token_summary_and_mass_gap():
    assert token_summary(torch.tensor([0.5, 1.5, 1.0])) == {"mean": 1.0, "min": 0.5, "max": 1.5,
                                                            "per_token": [0.5, 1.5, 1.0]}
    assert token_summary(torch.zeros(0)) == {"mean": None, "min": None, "max": None, "per_token": []}
    student = torch.log(torch.tensor([[0.5, 0.3], [0.2, 0.1]]))
    teacher = torch.log(torch.tensor([[0.4, 0.1], [0.6, 0.3]]))
    torch.testing.assert_close(topk_mass_gap(student, teacher), torch.tensor([0.3, -0.6]))


def test_logging_steps_and_default_dump_folder(tmp_path):
    assert [s for s in range(1, 32) if S.is_logging_step(s, 4, 10)] == [1, 10, 20, 30]
    assert not any(S.is_logging_step(s, 0, 1) for s in range(1, 5))
    settings = SRPOSettings()
    resolved = S.with_dump_dir(settings, "checkpoints/p/e", cwd=str(tmp_path))
    assert resolved.route_dump_dir == str(tmp_path / "checkpoints/p/e" / "srpo_dump")
    assert S.with_dump_dir(SRPOSettings(route_dump_dir="/x"), "ck").route_dump_dir == "/x"  # given: kept
    assert S.with_dump_dir(SRPOSettings(log_samples=0), "ck").route_dump_dir is None  # off: no dump
    assert S.with_dump_dir(SRPOSettings(method="grpo"), "ck").route_dump_dir is None  # no routes to show


@pytest.mark.parametrize("values, message", [
    ({"log_samples": -1}, "srpo.log_samples=-1 must be ≥ 0 (0 = off)"),
    ({"log_samples_freq": 0}, "srpo.log_samples_freq=0 must be ≥ 1 (steps)"),
    ({"log_samples": 2.5}, "srpo.log_samples=2.5 must be an integer"),
    ({"format_drop_warn": 0}, "srpo.format_drop_warn=0.0 must be in (0, 1]"),
    ({"format_drop_warn": 1.5}, "srpo.format_drop_warn=1.5 must be in (0, 1]"),
])
def test_bad_settings_are_refused_by_name(values, message):
    with pytest.raises(RunConfigError) as error:
        SRPOSettings.from_config(values)
    assert message in str(error.value)
    assert SRPOSettings.from_config({"format_drop_warn": None}).format_drop_warn is None


def record(route="sdpo"):
    sdpo = route == "sdpo"
    return S.sample_record(
        step=3, row=5, key="k5", route=route, reward=0.0, demo_key="k4" if sdpo else None,
        prompt="<|im_start|>user\nSort: 729<|im_end|>", response="<answer>297</answer>",
        response_tokens=["<answer>", "2", "9", "7", "</answer>"],
        teacher_prompt="<|im_start|>user\nSort: 729\nCorrect solution:\n\n<answer>279</answer>\n\nCorrectly solve"
        if sdpo else None,
        entropy=torch.tensor([0.1, 2.0, 0.5, 0.25, 0.15]) if sdpo else None,
        weights=torch.tensor([1.5, 0.2, 1.0, 1.2, 1.1]) if sdpo else None, weights_applied=True)


def test_record_console_line_and_wandb_rows():
    r = record()
    assert r["teacher_entropy"] == {"mean": 0.6, "min": 0.1, "max": 2.0, "per_token": [0.1, 2.0, 0.5, 0.25, 0.15]}
    assert r["weight"]["mean"] == 1.0 and r["weight"]["min"] == 0.2
    json.dumps(r)  # JSON-able
    assert S.teacher_addition(r["prompt"], r["teacher_prompt"]) == (
        "\nCorrect solution:\n\n<answer>279</answer>\n\nCorrectly solve")
    line = S.console_line(r, 1, 4, limit=30)
    assert line == ("[srpo] sample 1/4 step 3 sdpo reward=0.00 tokens=5 H_T=0.600[0.100,2.000] w=1.000[0.200,1.500] "
                    "response='<answer>297</answer>' teacher+='⏎Correct solution:⏎⏎<answer>2…'")
    grpo = S.console_line(record("grpo_failed"), 2, 4)
    assert "grpo_failed" in grpo and "H_T=- w=-" in grpo and grpo.endswith("teacher+='-'")
    rows = S.wandb_rows([r, record("grpo_correct")])
    assert len(rows[0]) == len(S.WANDB_COLUMNS)
    assert rows[0][:4] == [3, 5, "sdpo", 0.0] and rows[0][7:] == [0.6, 1.0, 0.2, 1.5]
    assert rows[1][6:] == [None, None, None, None, None]


def test_write_samples_and_wandb_only_when_it_is_a_logger(tmp_path, monkeypatch):
    path = S.write_samples(str(tmp_path / "dump"), 3, [record(), record("grpo_correct")])
    assert path == str(tmp_path / "dump" / "samples_step_3.jsonl")
    lines = [json.loads(x) for x in open(path)]
    assert [x["route"] for x in lines] == ["sdpo", "grpo_correct"]

    logged = []

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data

    fake = SimpleNamespace(run=object(), Table=Table, log=lambda data, step: logged.append((data, step)))
    monkeypatch.setitem(__import__("sys").modules, "wandb", fake)
    assert not S.log_wandb_table(["console"], 3, lines)
    assert S.log_wandb_table(["console", "wandb"], 3, lines)
    (data, step), = logged
    assert step == 3 and data[S.WANDB_KEY].columns == list(S.WANDB_COLUMNS)
    assert data[S.WANDB_KEY].data == S.wandb_rows(lines)
    fake.run = None  # wandb imported but no run started: nothing logged
    assert not S.log_wandb_table("wandb", 3, lines)
