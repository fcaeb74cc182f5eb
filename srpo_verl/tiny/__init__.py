"""Tiny Qwen3 model, byte-level BPE tokenizer and synthetic task for CPU runs of the real verl trainer.

``build_tiny_assets(out_dir, seed=0, warmstart_steps=None)`` (or ``python -m srpo_verl.tiny.build --out DIR``)
writes ``DIR/model`` (save_pretrained), ``DIR/data/{train,test}.parquet`` (verl rows) and ``DIR/manifest.json``.
"""

from srpo_verl.tiny.build import BUILDER_VERSION, BuildSettings, TinyAssets, build_tiny_assets, cached_assets

__all__ = ["BUILDER_VERSION", "BuildSettings", "TinyAssets", "build_tiny_assets", "cached_assets"]
