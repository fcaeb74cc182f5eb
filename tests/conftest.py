"""Shared pytest set-up: GPU tests skip cleanly (with the reason) when CUDA is absent; the SDPO split files."""

from pathlib import Path

import pytest
import torch

SPLITS_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sdpo_splits"


@pytest.fixture(scope="session")
def splits_root() -> Path:
    """The real SDPO benchmark splits (<repo>/../shared/data/sdpo_splits); a missing folder fails, never skips."""
    if not SPLITS_ROOT.is_dir():
        pytest.fail(f"the SDPO split files are expected at {SPLITS_ROOT} (<repo>/../shared/data/sdpo_splits); "
                    "CI provides them, locally copy them there")
    return SPLITS_ROOT


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
