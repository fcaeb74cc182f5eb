"""Tiny Qwen3 model, byte-level BPE tokenizer and synthetic task for CPU runs of the real verl trainer.

``build_tiny_assets(out_dir, seed=0, warmstart_steps=None)`` (or ``python -m srpo_verl.tiny.build --out DIR``)
writes ``DIR/model`` (save_pretrained), ``DIR/data/{train,test}.parquet`` (verl rows) and ``DIR/manifest.json``.
"""

__all__ = ["BUILDER_VERSION", "BuildSettings", "TinyAssets", "build_tiny_assets", "cached_assets"]


def __getattr__(name: str):
    # Lazy, so that `python -m srpo_verl.tiny.build` does not import the module twice (runpy warning).
    if name in __all__:
        from srpo_verl.tiny import build

        return getattr(build, name)
    raise AttributeError(f"module 'srpo_verl.tiny' has no attribute {name!r}")
