"""SRPOWorker's overrides keep verl 0.9.1's decorators (issue 13 §5): ``DistProfiler.annotate`` (nsys / torch-profiler
ranges) and ``_with_routing_replay_flag`` (MoE routing replay: on for the actor's compute_log_prob / update_actor, off
for the teacher pass, as verl's compute_ref_log_prob). Checked by calling the methods on a stand-in ``self``."""

from types import SimpleNamespace

import pytest
import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.engine_workers import ActorRolloutRefWorker

from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.worker import SRPOWorker


class Recorder:
    """Stands in for the actor / teacher engine and the profiler: records what reached it."""

    def __init__(self):
        self.flags, self.profiled = [], 0

    # engine
    def infer_batch(self, data):
        self.flags.append(tu.get_non_tensor_data(data=data, key="enable_routing_replay", default=None))
        return None

    train_mini_batch = infer_batch

    # profiler (DistProfiler.annotate asks it whether to record, then calls the method)
    rank = 0

    def check_enable(self):
        self.profiled += 1
        return False

    check_this_step = check_this_rank = check_enable


def worker(recorder: Recorder, method: str = "grpo"):
    teacher = SimpleNamespace(infer_batch=recorder.infer_batch,
                              engine_config=SimpleNamespace(use_dynamic_bsz=True))
    return SimpleNamespace(enable_routing_replay=True, srpo=SRPOSettings(method=method), actor=recorder,
                           teacher=teacher, profiler=recorder, _teacher_engine=lambda: teacher)


def batch():
    from srpo_verl.verl_ext import loss as L

    ids = torch.nested.as_nested_tensor([torch.zeros(2, 3, dtype=torch.long)], layout=torch.jagged)
    return TensorDict({L.QUERY_IDS: ids}, batch_size=1)


@pytest.mark.parametrize("name, replay", [("compute_log_prob", True), ("update_actor", True),
                                          ("compute_teacher_topk", False)])
def test_overrides_keep_verls_profiler_range_and_routing_replay_flag(name, replay):
    recorder = Recorder()
    getattr(SRPOWorker, name)(worker(recorder), batch())
    assert recorder.flags == [replay]
    assert recorder.profiled == 1  # the DistProfiler.annotate wrapper ran (and, profiling off, called through)


def test_the_actor_overrides_use_verls_own_decorator_stack():
    """verl's ActorRolloutRefWorker methods carry the same two wrappers (one profiler call, replay on)."""
    for name in ("compute_log_prob", "update_actor"):
        recorder = Recorder()
        getattr(ActorRolloutRefWorker, name)(worker(recorder), batch())
        assert (recorder.flags, recorder.profiled) == ([True], 1), name
