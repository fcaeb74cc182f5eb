"""The EMA update reads the actor's shards on the host only after the device has drained: verl offloads the actor
with ``non_blocking`` copies (``offload_fsdp2_model_to_cpu``), so a read before a synchronisation could see
unfinished copies. On CPU nothing is asynchronous, so the test checks the order of the two calls; the GPU e2e
(scripts/gpu_e2e.sh, actor param offload) checks the values on a real device."""

from types import SimpleNamespace

import pytest
import torch

from srpo_verl.verl_ext import worker as worker_module
from srpo_verl.verl_ext.settings import SRPOSettings
from srpo_verl.verl_ext.worker import SRPOWorker


def test_the_ema_synchronises_the_device_before_it_reads_the_actor(monkeypatch):
    events = []
    monkeypatch.setattr(worker_module, "get_torch_device",
                        lambda: SimpleNamespace(is_available=lambda: True,
                                                   synchronize=lambda: events.append("synchronize")))
    real_update = worker_module.ema_update_

    def recording_update(teacher, actor, rate, **kwargs):
        events.append("read")
        return real_update(teacher, actor, rate, **kwargs)

    monkeypatch.setattr(worker_module, "ema_update_", recording_update)
    torch.manual_seed(0)
    actor, teacher = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = teacher.weight.detach().clone()
    stand_in = SimpleNamespace(srpo=SRPOSettings(method="srpo"), _require_ema=lambda what: None,
                               _teacher_module=lambda: teacher,
                               actor=SimpleNamespace(engine=SimpleNamespace(module=actor)))

    result = SRPOWorker.ema_update_teacher(stand_in, 0.25)

    assert events == ["synchronize", "read"]
    assert result["applied"] is True
    expected = before + 0.25 * (actor.weight.detach() - before)
    assert torch.allclose(teacher.weight.detach(), expected, rtol=0, atol=1e-7)
    assert result["max_abs_delta"] == pytest.approx((expected - before).abs().max().item(), rel=1e-6)
