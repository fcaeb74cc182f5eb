"""Shared e2e fixture: the tiny Qwen3 assets, built once per test session (about 1.5 minutes on 2 cores).

Set SRPO_VERL_E2E_ASSETS=DIR to reuse prebuilt assets (DIR/model, DIR/data/{train,test}.parquet), e.g. the ones
`python -m srpo_verl.tiny.build --out DIR` or the quickstart (runs/tiny_assets_seed0) wrote.
"""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    """(model_dir, train_parquet, test_parquet) of the tiny synthetic task, warm-started to mixed groups."""
    prebuilt = os.environ.get("SRPO_VERL_E2E_ASSETS")
    if prebuilt:
        root = Path(prebuilt)
        paths = (root / "model", root / "data" / "train.parquet", root / "data" / "test.parquet")
        missing = [str(p) for p in paths if not p.exists()]
        assert not missing, f"SRPO_VERL_E2E_ASSETS={prebuilt}: missing {missing}"
        return paths
    from srpo_verl.tiny.build import build_tiny_assets

    built = build_tiny_assets(tmp_path_factory.mktemp("tiny"), seed=0)
    return built.model_dir, built.train_parquet, built.test_parquet
