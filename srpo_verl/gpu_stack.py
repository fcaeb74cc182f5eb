"""The GPU stack srpo_verl installs with: verl 0.9.1's own pins, in one place.

setup.py builds its `vllm`, `sglang` and `flash-attn` extras from this file, scripts/setup_env.sh and
docker/Dockerfile read it through the command line below, and tests/unit/test_install_pins.py checks it against
verl's installed metadata (`importlib.metadata.requires("verl")`) and against `gpu_engine_requirements.json`, a
snapshot of the engines' own wheel metadata (what their `Requires-Dist` asks of torch, transformers, ...).

Standard library only, and importable as a plain file (setup.py runs it before the package is installed).

    python srpo_verl/gpu_stack.py torch-spec                # torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0
    python srpo_verl/gpu_stack.py torch-index               # the PyTorch cu130 wheel index
    python srpo_verl/gpu_stack.py extra vllm                # the requirements of the `vllm` extra, one per line
    python srpo_verl/gpu_stack.py engine-deps sglang        # sglang's own requirements minus the overridden ones
    python srpo_verl/gpu_stack.py constraints vllm          # `name==version` lines of the whole pinned stack
    python srpo_verl/gpu_stack.py snapshot WHEEL... > srpo_verl/gpu_engine_requirements.json
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

VERL_VERSION = "0.9.1"

# verl 0.9.1's `vllm` / `sglang` / `fsdp` extras all pin these three (cu130 builds on the PyTorch index; the PyPI
# wheels of torch 2.11.0 for Linux x86-64 are CUDA 13 builds too).
TORCH_PINS = {"torch": "2.11.0", "torchvision": "0.26.0", "torchaudio": "2.11.0"}
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu130"

# The two rollout engines verl 0.9.1 supports, with the versions its extras pin (the same transformers for both).
ENGINE_PINS = {
    "vllm": {"vllm": "0.24.0", "transformers": "5.9.0"},
    "sglang": {"sglang": "0.5.12", "transformers": "5.9.0"},
}

# verl 0.9.1's `flash-attn-cu130torch211` extra. PyPI has only its source distribution (a CUDA compile against the
# installed torch); verl's images and its uv sources use a prebuilt cu130 / torch 2.11 / cp312 wheel (docs/INSTALL.md).
FLASH_ATTN_VERSION = "2.8.3"

# Requirements of an engine's own metadata that pip cannot satisfy next to verl 0.9.1, so that engine is installed
# with --no-deps and its other requirements are installed explicitly (the override verl's uv set-up applies).
# Every conflict between the snapshot and our pins must be listed here, with the reason (the unit test checks it).
ENGINE_OVERRIDES = {
    "sglang": {
        "transformers": "sglang 0.5.12 pins transformers==5.6.0; verl 0.9.1 requires transformers!=5.6.0 and its "
                        "sglang extra pins 5.9.0",
        "flash-attn-4": "ships the same flash_attn/cute files as flash-attn 2.8.3 (whichever lands last wins); "
                        "sglang imports it only for its optional fa4 attention backend",
    },
    "vllm": {},
}

SNAPSHOT_PATH = Path(__file__).resolve().parent / "gpu_engine_requirements.json"


def canonical(name: str) -> str:
    """PEP 503 normalised project name (`Flash_Attn` -> `flash-attn`)."""
    out = name.strip().lower()
    for ch in "_.":
        out = out.replace(ch, "-")
    while "--" in out:
        out = out.replace("--", "-")
    return out


def requirement_name(requirement: str) -> str:
    """The project name a PEP 508 requirement string starts with (`torch==2.11.0; ...` -> `torch`)."""
    end = len(requirement)
    for i, ch in enumerate(requirement):
        if not (ch.isalnum() or ch in "-_."):
            end = i
            break
    return canonical(requirement[:end])


def check_engine(engine: str) -> None:
    if engine not in ENGINE_PINS:
        raise SystemExit(f"unknown engine {engine!r}: expected one of {sorted(ENGINE_PINS)}")


def torch_requirements() -> list[str]:
    return [f"{name}=={version}" for name, version in TORCH_PINS.items()]


def extra_requirements(engine: str) -> list[str]:
    """The setup.py extra of an engine. For an engine with overrides, the engine itself is left out: pip cannot
    resolve it with verl's pins, so scripts/setup_env.sh installs it with --no-deps plus `engine_dependencies`."""
    check_engine(engine)
    pins = ENGINE_PINS[engine]
    engine_req = [] if ENGINE_OVERRIDES[engine] else [f"{engine}=={pins[engine]}"]
    others = [f"{name}=={version}" for name, version in pins.items() if name != engine]
    return [*torch_requirements(), *engine_req, *others]


def load_snapshot(path: Path = SNAPSHOT_PATH) -> dict:
    return json.loads(Path(path).read_text())


def engine_dependencies(engine: str, snapshot: dict | None = None) -> list[str]:
    """The engine's own Requires-Dist (from the snapshot, `extra ==` lines dropped) minus its overrides and minus
    what our pins already fix (torch / torchvision / torchaudio / transformers come from the extra)."""
    check_engine(engine)
    snapshot = load_snapshot() if snapshot is None else snapshot
    skipped = set(ENGINE_OVERRIDES[engine]) | set(TORCH_PINS) | set(ENGINE_PINS[engine])
    return [req for req in snapshot[engine]["requires_dist"] if requirement_name(req) not in skipped]


def stack_constraints(engine: str) -> list[str]:
    """`name==version` of everything pinned for one engine (torch trio, engine, transformers, flash-attn)."""
    check_engine(engine)
    pins = {**TORCH_PINS, **ENGINE_PINS[engine], "flash-attn": FLASH_ATTN_VERSION}
    return [f"{name}=={version}" for name, version in pins.items()]


def wheel_metadata(wheel: Path) -> dict:
    """Name, version, file name and Requires-Dist (without `extra ==` lines) of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise ValueError(f"{wheel}: expected one */METADATA, found {names}")
        message = Parser().parsestr(archive.read(names[0]).decode("utf-8"))
    requires = [r for r in message.get_all("Requires-Dist") or [] if "extra ==" not in r.replace("extra==", "extra ==")]
    sha256 = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()
    return {"name": canonical(message["Name"]), "version": message["Version"], "wheel": Path(wheel).name,
            "sha256": sha256, "requires_dist": requires}


def snapshot_of(wheels: list[Path]) -> dict:
    return {meta["name"]: meta for meta in map(wheel_metadata, wheels)}


def main(argv: list[str]) -> int:
    usage = "usage: gpu_stack.py torch-spec | torch-index | extra ENGINE | engine-deps ENGINE | constraints ENGINE " \
            "| snapshot WHEEL..."
    if not argv:
        raise SystemExit(usage)
    command, args = argv[0], argv[1:]
    if command == "torch-spec":
        print(" ".join(torch_requirements()))
    elif command == "torch-index":
        print(TORCH_CUDA_INDEX)
    elif command == "flash-attn":
        print(f"flash-attn=={FLASH_ATTN_VERSION}")
    elif command in ("extra", "engine-deps", "constraints") and len(args) == 1:
        lines = {"extra": extra_requirements, "engine-deps": engine_dependencies,
                 "constraints": stack_constraints}[command](args[0])
        print("\n".join(lines))
    elif command == "snapshot" and args:
        print(json.dumps(snapshot_of([Path(a) for a in args]), indent=1, sort_keys=True))
    else:
        raise SystemExit(usage)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
