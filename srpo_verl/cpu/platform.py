"""verl platform for plain CPUs (verl 0.9.1 only knows nvidia / huawei / amd and otherwise falls back to "nvidia").

`PlatformCPU` makes `get_device_name()` return "cpu", `get_nccl_backend()` return "gloo" and `get_torch_device()` return
`CPU_DEVICE_MODULE`: `torch.cpu` plus the handful of `torch.cuda` functions verl calls unconditionally
(`memory_reserved`, `mem_get_info`, `empty_cache`, `get_rng_state`, ...), answered honestly for a CPU: no device
memory to report (zeros, or host RAM for `mem_get_info`), no cache to empty, and the CPU RNG state.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Optional

import torch

# verl touch-point: the platform registry and base class (verl/plugin/platform, 0.9.1).
from verl.plugin.platform import PlatformBase, PlatformRegistry

CPU_PLATFORM_NAME = "cpu"


def _host_memory_bytes() -> tuple[int, int]:
    """(free, total) host RAM in bytes, from /proc/meminfo (Linux) or os.sysconf; stands in for device memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()}
        return fields.get("MemAvailable", fields["MemFree"]), fields["MemTotal"]
    except (OSError, KeyError, ValueError):
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page


class _CPUDeviceModule(ModuleType):
    """`torch.cpu` with the `torch.cuda`-style functions verl calls on `get_torch_device()`.

    Attribute lookups not defined here fall through to `torch.cpu` (Stream, Event, stream, current_stream,
    synchronize, device_count, is_available, ...). Memory counters are 0 because a CPU has no separate device memory
    to account; `mem_get_info` reports host RAM so callers computing fractions get sensible numbers.
    """

    def __init__(self) -> None:
        super().__init__("srpo_verl_cpu_device_module", "torch.cpu plus no-op cuda-style memory/RNG functions")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> int:
        return 0

    @staticmethod
    def set_device(device: Any) -> None:
        return None

    @staticmethod
    def synchronize(device: Any = None) -> None:
        return None

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return 0

    @staticmethod
    def memory_reserved(device: Any = None) -> int:
        return 0

    @staticmethod
    def max_memory_allocated(device: Any = None) -> int:
        return 0

    @staticmethod
    def max_memory_reserved(device: Any = None) -> int:
        return 0

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        return _host_memory_bytes()

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    @staticmethod
    def manual_seed_all(seed: int) -> None:
        torch.manual_seed(seed)

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "cpu"


CPU_DEVICE_MODULE = _CPUDeviceModule()


class PlatformCPU(PlatformBase):
    """verl `PlatformBase` for CPU-only hosts: device "cpu", collective backend "gloo", no IPC, no profiler.

    `ray_resource_name()` stays "GPU": verl's resource pool hard-codes `use_gpu=True`, so the CPU backend runs with
    logical Ray GPUs (`+ray_kwargs.ray_init.num_gpus=1` in `srpo_verl/config/cpu.yaml`) that no code ever touches.
    `current_device()` returns `torch.device("cpu")` rather than an index: verl writes `tensor.to(get_device_id())`
    and an int there would mean `cuda:N`.
    """

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return CPU_DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: the CPU backend is opt-in and activated explicitly (srpo_verl.cpu.activate).
        return False

    def current_device(self) -> torch.device:  # type: ignore[override]
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets CUDA_VISIBLE_DEVICES for the logical GPUs; nothing reads it on CPU.
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def register_cpu_platform() -> None:
    """Register `PlatformCPU` under the name "cpu" (so `VERL_PLATFORM=cpu` also resolves it)."""
    PlatformRegistry.register(platform=CPU_PLATFORM_NAME)(PlatformCPU)
