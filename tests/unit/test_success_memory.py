"""The success memory (srpo_verl.core.success_memory) and its routing: hand-computed cases."""

import pytest
import torch

from srpo_verl.core.routing import route_metrics, route_samples
from srpo_verl.preflight import checkpoint as ckpt
from srpo_verl.core.success_memory import (SuccessMemory, add_memory_teachers, group_successes, prompt_key)
from srpo_verl.verl_ext.layout import route_batch
from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings


def test_prompt_key_is_sha256_of_canonical_json_and_ignores_dict_order():
    assert prompt_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    one = [{"role": "user", "content": "Sort: 419"}]
    same = [{"content": "Sort: 419", "role": "user"}]
    assert prompt_key(one) == prompt_key(same) == prompt_key('[{"content": "Sort: 419", "role": "user"}]')
    assert prompt_key(one) != prompt_key([{"role": "user", "content": "Sort: 418"}])


def test_store_keeps_the_latest_response_and_evicts_the_least_recently_stored():
    memory = SuccessMemory(max_entries=2)
    memory.store("a", "A1")
    memory.store("b", "B1")
    memory.store("a", "A2")  # refreshes a: b is now the oldest
    memory.store("c", "C1")
    assert len(memory) == 2 and "b" not in memory
    assert memory.lookup("a") == "A2" and memory.lookup("c") == "C1" and memory.lookup("b") is None
    assert memory.state_dict() == {"version": 1, "max_entries": 2, "entries": [["a", "A2"], ["c", "C1"]]}


def test_state_round_trip_and_a_smaller_cap_keeps_the_newest():
    memory = SuccessMemory(3)
    for key in "xyz":
        memory.store(key, key.upper())
    restored = SuccessMemory(3)
    restored.load_state_dict(memory.state_dict())
    assert restored.state_dict() == memory.state_dict()
    smaller = SuccessMemory(2)
    smaller.load_state_dict(memory.state_dict())
    assert smaller.state_dict()["entries"] == [["y", "Y"], ["z", "Z"]]


@pytest.mark.parametrize("state, match", [
    ({"version": 2, "entries": []}, "version 2"),
    ([], "version 'list'"),
    ({"version": 1, "entries": [["a"]]}, "entries"),
    ({"version": 1, "entries": [["a", 3]]}, "entries"),
])
def test_malformed_state_is_refused_by_name(state, match):
    with pytest.raises(ValueError, match=match):
        SuccessMemory(4).load_state_dict(state)


def test_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="max_entries=0"):
        SuccessMemory(0)


def test_memory_routes_only_failures_without_an_in_group_teacher():
    # group a: all failed, remembered -> all three distilled from memory
    # group b: one correct -> its failures have the sibling; memory changes nothing there
    # group c: all failed, not remembered -> GRPO (zero advantage), as without the memory
    rewards = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    groups = ["a", "a", "a", "b", "b", "b", "c", "c"]
    has_memory = torch.tensor([True, True, True, True, True, True, False, False])
    plain = route_samples(rewards, groups, mode="srpo")
    routed = add_memory_teachers(plain, has_memory)
    assert routed.memory_demo.tolist() == [True, True, True, False, False, False, False, False]
    assert routed.distill.tolist() == [True, True, True, False, True, True, False, False]
    assert routed.demo_index.tolist() == [-1, -1, -1, -1, 3, 3, -1, -1]
    assert route_metrics(routed) == {"srpo/route/grpo_frac": 3 / 8, "srpo/route/sdpo_frac": 5 / 8,
                                     "srpo/route/no_demo_frac": 2 / 8, "srpo/memory/routed_frac": 3 / 8}
    assert "srpo/memory/routed_frac" not in route_metrics(plain)


def test_sdpo_mode_memory_leaves_a_lone_correct_rollout_alone():
    # sdpo distils correct samples with a teacher too; a lone correct one has no sibling and the memory serves
    # failures only, so it stays on GRPO
    routed = add_memory_teachers(route_samples(torch.tensor([1.0, 0.0]), ["a", "a"], mode="sdpo"),
                                 torch.tensor([True, True]))
    assert routed.distill.tolist() == [False, True] and routed.memory_demo.tolist() == [False, False]


def test_modes_that_distil_no_failure_are_refused():
    route = route_samples(torch.tensor([0.0, 1.0]), ["a", "a"], mode="sdpo_correct_only")
    with pytest.raises(ValueError, match="sdpo_correct_only"):
        add_memory_teachers(route, torch.tensor([True, True]))


def test_group_successes_is_the_first_correct_position_per_group():
    correct = torch.tensor([False, True, True, False, False, True])
    assert group_successes(correct, ["a", "a", "a", "b", "b", "c"]) == {"a": 1, "c": 5}


def test_route_batch_applies_the_memory_in_batch_order_and_never_to_padding():
    # a balanced (reordered) batch: keys {uid}_{session}_{index}; row 4 is verl's padding copy of row 0
    keys = ["u1_0_1", "u0_0_0", "u1_0_0", "u0_0_1", "u1_0_1"]
    rewards = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    is_padding = torch.tensor([False, False, False, False, True])
    has_memory = torch.tensor([True, True, True, True, True])
    route, metrics = route_batch(keys, rewards, is_padding, 0.5, "srpo", None, has_memory)
    assert route.memory_demo.tolist() == [True, False, True, False, False]
    assert route.distill.tolist() == [True, True, True, False, False]
    assert route.demo_index.tolist() == [-1, 3, -1, -1, -1]
    assert metrics["srpo/memory/routed_frac"] == 2 / 4


def test_settings_refuse_the_memory_where_no_failure_is_distilled():
    assert SRPOSettings(success_memory=True, method="adv_mix").success_memory
    for method in ("grpo", "sdpo_correct_only"):
        with pytest.raises(RunConfigError, match=f"srpo.success_memory=true has no effect with srpo.method={method}"):
            SRPOSettings(success_memory=True, method=method)
    with pytest.raises(RunConfigError, match="srpo.success_memory_max_entries=0 must be ≥ 1"):
        SRPOSettings(success_memory_max_entries=0)


def test_memory_state_round_trips_through_a_step_folder_and_a_missing_file_is_refused(tmp_path):
    memory = SuccessMemory(4)
    memory.store(prompt_key("q"), "<answer>149</answer>")
    ckpt.write_success_memory(tmp_path / "global_step_2", memory.state_dict())
    restored = SuccessMemory(4)
    restored.load_state_dict(ckpt.read_success_memory(tmp_path / "global_step_2"))
    assert restored.lookup(prompt_key("q")) == "<answer>149</answer>"
    with pytest.raises(ckpt.CheckpointError, match=r"has no srpo_success_memory.json .* srpo.success_memory=false"):
        ckpt.read_success_memory(tmp_path / "global_step_3")
    (tmp_path / "global_step_4").mkdir()
    (tmp_path / "global_step_4" / ckpt.SUCCESS_MEMORY_FILE).write_text("{")
    with pytest.raises(ckpt.CheckpointError, match="is unreadable"):
        ckpt.read_success_memory(tmp_path / "global_step_4")
