"""The verl entry point loads srpo_verl's plugin; the CPU backend activates only with SRPO_VERL_CPU=1; config."""

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, sys
import verl
import srpo_verl.cpu as cpu
from verl.utils.device import get_device_name, get_nccl_backend
report = {"plugin_loaded": "srpo_verl.plugin" in sys.modules, "active": cpu.is_active(),
          "device": get_device_name(), "backend": get_nccl_backend()}
if cpu.is_active():
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class
    import verl.workers.engine_workers as ew
    from srpo_verl.cpu.patches import applied_patches
    report["engine"] = EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__
    report["replica"] = get_rollout_replica_class("hf").__name__
    report["adapter"] = get_rollout_class("hf", "async").__name__
    report["pg_init_patched"] = getattr(ew.initialize_global_process_group_ray, "_srpo_verl_cpu", False)
    report["patches"] = applied_patches()
print("REPORT" + json.dumps(report))
"""


def _run_probe(flag):
    env = {k: v for k, v in os.environ.items() if k not in ("SRPO_VERL_CPU", "VERL_USE_EXTERNAL_PLUGINS")}
    if flag is not None:
        env["SRPO_VERL_CPU"] = flag
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    return proc


def _report(proc):
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("REPORT"):])


def test_plugin_loads_but_cpu_backend_stays_inactive_without_the_flag(verl_probe_without_cpu_flag):
    report = verl_probe_without_cpu_flag  # tests/unit/conftest.py: the same environment as _run_probe(None)
    assert report["plugin_loaded"] is True
    assert report["active"] is False
    assert report["device"] != "cpu"  # verl's own fallback ("cuda" on a GPU-less host), untouched by us


def test_flag_activates_platform_patches_and_hf_rollout():
    report = _report(_run_probe("1"))
    assert report["plugin_loaded"] and report["active"]
    assert (report["device"], report["backend"]) == ("cpu", "gloo")
    assert report["engine"] == "FSDPEngineWithLMHead"
    assert (report["replica"], report["adapter"]) == ("HFReplica", "HFServerAdapter")
    assert report["pg_init_patched"] is True
    assert "verl.workers.engine.fsdp.transformer_impl:patch_offload_policy_pinning" in report["patches"]


def test_plugin_errors_are_printed_loudly():
    proc = _run_probe("maybe")  # an invalid flag makes the plugin raise while verl imports it
    assert "[srpo_verl.plugin] FAILED to load" in proc.stderr
    assert "SRPO_VERL_CPU='maybe'" in proc.stderr


def test_cpu_grpo_config_composes_with_every_cpu_override():
    from hydra import compose, initialize_config_module

    import srpo_verl.main as entry

    with initialize_config_module("srpo_verl.config", version_base=None):
        cfg = compose("cpu_grpo", overrides=["trainer.total_training_steps=2"])
    entry.materialise_package_paths(cfg)
    arr = cfg.actor_rollout_ref
    assert cfg.algorithm.adv_estimator == "grpo"
    assert (arr.rollout.name, arr.actor.strategy, arr.ref.strategy) == ("hf", "fsdp2", "fsdp2")
    assert arr.model.override_config.attn_implementation == "eager"
    assert arr.model.use_remove_padding is False and arr.actor.use_torch_compile is False
    for role in (arr.actor, arr.ref):
        assert dict(role.fsdp_config.mixed_precision) == {"param_dtype": "fp32", "reduce_dtype": "fp32",
                                                          "buffer_dtype": "fp32"}
    assert (arr.rollout.dtype, arr.rollout.calculate_log_probs, arr.rollout.full_determinism) == ("float32", True, True)
    assert (cfg.trainer.device, cfg.trainer.n_gpus_per_node) == ("cpu", 1)
    assert (cfg.ray_kwargs.ray_init.num_cpus, cfg.ray_kwargs.ray_init.num_gpus) == (16, 1)
    assert cfg.transfer_queue.backend.SimpleStorage.num_data_storage_units == 1
    path = cfg.reward.custom_reward_function.path
    assert os.path.isabs(path) and path.endswith("srpo_verl/rewards/verl_entry.py") and os.path.exists(path)


def test_package_path_resolver_refuses_missing_files():
    import srpo_verl.main as entry

    with pytest.raises(FileNotFoundError, match="no_such_file.py"):
        entry.package_path("no_such_file.py")
