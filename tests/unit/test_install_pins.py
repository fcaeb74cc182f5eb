"""The GPU install's pins (srpo_verl/gpu_stack.py) against verl 0.9.1's installed metadata and the engines' own wheel
metadata (srpo_verl/gpu_engine_requirements.json): offline, a fraction of a second.

What a future bump that cannot resolve looks like here: verl's extras pin another torch / engine / transformers than
ours (a verl upgrade), or an engine's Requires-Dist asks for a torch / transformers our pins do not satisfy without
an override listed in ENGINE_OVERRIDES (an engine upgrade: refresh the snapshot with scripts/check_gpu_resolve.sh,
which also runs pip's resolver over the full sets).
"""

from __future__ import annotations

import importlib.metadata as md
import re
import runpy
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

from srpo_verl import gpu_stack

REPO = Path(__file__).resolve().parents[2]
# The GPU target: CPython 3.12 on Linux x86-64 (markers of the engines' requirements are evaluated there).
TARGET_ENV = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3",
              "platform_machine": "x86_64", "sys_platform": "linux", "platform_system": "Linux",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def applies(req: Requirement, extra: str = "") -> bool:
    return req.marker is None or req.marker.evaluate({**TARGET_ENV, "extra": extra})


def verl_requirements(extra: str | None) -> list[Requirement]:
    """verl's installed Requires-Dist: the base ones (extra=None) or those that only an extra brings."""
    reqs = [Requirement(text) for text in md.requires("verl") or []]
    if extra is None:
        return [r for r in reqs if r.marker is None]
    return [r for r in reqs if r.marker is not None and applies(r, extra) and not applies(r, "")]


def exact_pins(reqs: list[Requirement]) -> dict[str, str]:
    """{name: version} of the `==` requirements (specifier sets with a single `==`)."""
    out = {}
    for req in reqs:
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator == "==":
            out[gpu_stack.canonical(req.name)] = specs[0].version
    return out


@pytest.fixture(scope="module")
def snapshot() -> dict:
    return gpu_stack.load_snapshot()


def test_installed_verl_is_the_pinned_version():
    assert md.version("verl") == gpu_stack.VERL_VERSION


@pytest.mark.parametrize("engine", sorted(gpu_stack.ENGINE_PINS))
def test_our_engine_pins_equal_verls_extra(engine):
    """Every exact pin of verl's `vllm` / `sglang` extra is ours, and nothing else is (mbridge, sglang-kernel:
    unversioned in verl's extra, not pinned by us either)."""
    verl_pins = exact_pins(verl_requirements(engine))
    assert verl_pins == {**gpu_stack.TORCH_PINS, **gpu_stack.ENGINE_PINS[engine]}


def test_flash_attn_pin_equals_verls():
    assert exact_pins(verl_requirements("flash-attn-cu130torch211")) == {"flash-attn": gpu_stack.FLASH_ATTN_VERSION}


def test_transformers_pin_is_inside_verls_base_range():
    (transformers,) = [r for r in verl_requirements(None) if gpu_stack.canonical(r.name) == "transformers"]
    for engine, pins in gpu_stack.ENGINE_PINS.items():
        assert transformers.specifier.contains(pins["transformers"]), (engine, str(transformers.specifier))


@pytest.mark.parametrize("engine", sorted(gpu_stack.ENGINE_PINS))
def test_snapshot_is_of_the_pinned_engine_version(snapshot, engine):
    """Bumping an engine pin without refreshing the snapshot fails here (scripts/check_gpu_resolve.sh refreshes)."""
    entry = snapshot[engine]
    assert entry["version"] == gpu_stack.ENGINE_PINS[engine][engine]
    assert entry["wheel"].startswith(f"{engine}-{entry['version']}-") and re.fullmatch("[0-9a-f]{64}", entry["sha256"])


def conflicts(engine: str, snapshot: dict) -> dict[str, str]:
    """{name: requirement} of the engine's own requirements that our pins or verl's base requirements rule out."""
    ours = {**gpu_stack.TORCH_PINS, **gpu_stack.ENGINE_PINS[engine], "flash-attn": gpu_stack.FLASH_ATTN_VERSION}
    verl_base = {gpu_stack.canonical(r.name): r for r in verl_requirements(None)}
    found = {}
    for text in snapshot[engine]["requires_dist"]:
        req = Requirement(text)
        name = gpu_stack.canonical(req.name)
        if not applies(req):
            continue
        if name in ours and not req.specifier.contains(ours[name], prereleases=True):
            found[name] = text
        pins = exact_pins([req])
        if name in pins and name in verl_base and not verl_base[name].specifier.contains(pins[name], prereleases=True):
            found[name] = text
    return found


@pytest.mark.parametrize("engine", sorted(gpu_stack.ENGINE_PINS))
def test_every_conflict_of_an_engine_with_our_pins_is_an_explicit_override(snapshot, engine):
    overrides = gpu_stack.ENGINE_OVERRIDES[engine]
    unexplained = {name: text for name, text in conflicts(engine, snapshot).items() if name not in overrides}
    assert not unexplained, f"{engine}'s metadata cannot resolve with our pins: {unexplained}"


@pytest.mark.parametrize("engine", sorted(gpu_stack.ENGINE_PINS))
def test_engines_ask_for_our_torch(snapshot, engine):
    """The engines pin torch exactly: the one version every extra of verl 0.9.1 pins."""
    torch_reqs = [Requirement(t) for t in snapshot[engine]["requires_dist"] if gpu_stack.requirement_name(t) == "torch"]
    assert torch_reqs and all(r.specifier.contains(gpu_stack.TORCH_PINS["torch"]) for r in torch_reqs)


def test_sglang_conflicts_are_what_the_overrides_say(snapshot):
    """sglang 0.5.12 pins transformers==5.6.0, the one version verl 0.9.1 excludes: pip cannot install verl's own
    `sglang` extra; the override installs sglang --no-deps with the rest of its requirements."""
    assert conflicts("sglang", snapshot) == {"transformers": "transformers==5.6.0"}
    assert set(gpu_stack.ENGINE_OVERRIDES["sglang"]) == {"transformers", "flash-attn-4"}
    names = {gpu_stack.requirement_name(t) for t in snapshot["sglang"]["requires_dist"]}
    assert set(gpu_stack.ENGINE_OVERRIDES["sglang"]) <= names  # no stale override
    deps = gpu_stack.engine_dependencies("sglang", snapshot)
    dep_names = {gpu_stack.requirement_name(t) for t in deps}
    assert not dep_names & {"transformers", "flash-attn-4", "torch", "torchaudio", "torchvision", "sglang"}
    assert "sglang-kernel==0.4.2.post2" in deps and len(deps) == len(snapshot["sglang"]["requires_dist"]) - 5


def test_vllm_needs_no_override(snapshot):
    assert conflicts("vllm", snapshot) == {} and gpu_stack.ENGINE_OVERRIDES["vllm"] == {}


def test_setup_py_extras_are_built_from_gpu_stack(monkeypatch):
    """Run setup.py with setuptools.setup captured: its GPU extras are exactly gpu_stack's."""
    import setuptools

    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    extras = captured["extras_require"]
    assert extras["vllm"] == ["torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0", "vllm==0.24.0",
                              "transformers==5.9.0"]
    assert extras["sglang"] == gpu_stack.extra_requirements("sglang")
    assert extras["flash-attn"] == ["flash-attn==2.8.3"]
    assert "gpu_engine_requirements.json" in captured["package_data"]["srpo_verl"]
    assert f"verl[verl-core]=={gpu_stack.VERL_VERSION}" in captured["install_requires"]


def test_base_requirements_name_only_extras_their_distributions_provide(monkeypatch):
    """An extra a distribution does not provide is dropped by pip with a warning only. math-verify's own
    [antlr4-9-3] extra is such a case one level down (it asks latex2sympy2_extended for antlr4_9_3), so the base
    requirements name the antlr4 runtime directly instead of that extra."""
    import importlib.metadata

    import setuptools
    from packaging.requirements import Requirement

    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    checked = 0
    for line in captured["install_requires"]:
        requirement = Requirement(line)
        provided = set(importlib.metadata.metadata(requirement.name).get_all("Provides-Extra") or [])
        assert requirement.extras <= provided, f"{line}: {sorted(requirement.extras - provided)} not in {sorted(provided)}"
        checked += bool(requirement.extras)
    assert checked == 2  # verl[verl-core], ray[default]
    assert "antlr4-python3-runtime==4.9.3" in captured["install_requires"]
    assert importlib.metadata.version("antlr4-python3-runtime") == "4.9.3"


def test_no_other_file_writes_its_own_gpu_versions():
    """setup_env.sh, the Dockerfile and the README take the GPU versions from gpu_stack.py, not their own copies."""
    versions = {v for v in (*gpu_stack.TORCH_PINS.values(), *(p for e in gpu_stack.ENGINE_PINS.values()
                                                                for p in e.values()), gpu_stack.FLASH_ATTN_VERSION)}
    for relative in ("scripts/setup_env.sh", "docker/Dockerfile"):
        text = (REPO / relative).read_text()
        assert "gpu_stack.py" in text, relative
        written = {v for v in versions if re.search(rf"(?<![\d.]){re.escape(v)}(?![\d.])", text)}
        assert not written, f"{relative} writes {sorted(written)} itself"
    readme = (REPO / "README.md").read_text()
    for name, version in re.findall(r"\b(torch|vllm|sglang|transformers|flash-attn)==([\w.]+)", readme):
        expected = {**gpu_stack.TORCH_PINS, **gpu_stack.ENGINE_PINS["vllm"], **gpu_stack.ENGINE_PINS["sglang"],
                    "flash-attn": gpu_stack.FLASH_ATTN_VERSION}.get(name)
        if name == "torch" and Version(version) > Version(expected):
            continue  # the CPU build of the CPU quickstart
        assert version == expected, (name, version)


def test_gpu_stack_command_line(capsys):
    assert gpu_stack.main(["torch-spec"]) == 0
    assert capsys.readouterr().out.split() == ["torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0"]
    gpu_stack.main(["constraints", "sglang"])
    assert capsys.readouterr().out.split() == ["torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0",
                                              "sglang==0.5.12", "transformers==5.9.0", "flash-attn==2.8.3"]
    with pytest.raises(SystemExit, match="unknown engine 'trtllm'"):
        gpu_stack.main(["extra", "trtllm"])
