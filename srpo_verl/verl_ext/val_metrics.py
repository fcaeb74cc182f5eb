"""A vectorised, bit-identical `bootstrap_metric` for verl's validation metrics.

verl 0.9.1's `process_validation_metrics` calls `metric_utils.bootstrap_metric` for every prompt, every variable the
verifier returns (score, acc, format_ok, ...), every subset size N in 2, 4, ..., n: three Python loops of 1000
bootstrap draws each (best@N, worst@N, maj@N), single-threaded in the trainer while the accelerators wait
(docs/PERFORMANCE.md has the measurement).

`bootstrap_metric` below draws the same indices (the same `np.random.seed` + `np.random.choice` calls, so numpy's
global state ends where verl's leaves it) and evaluates max / min / majority vote on the whole [n_bootstrap, N]
index matrix at once. Results are bit-identical to verl's (tests/unit/test_val_metrics.py compares them on random
inputs, ties and mixed types); anything it does not recognise (another reduce function, non-numeric values, NaN,
N > 64 for the vote) goes to verl's own function.
"""

from __future__ import annotations

import functools
from numbers import Real
from types import ModuleType
from typing import Any, Callable

import numpy as np

from srpo_verl.import_hooks import after_import, mark_wrapper

METRIC_UTILS_MODULE = "verl.trainer.ppo.metric_utils"
MARKER = "_srpo_vectorised"
#: the largest subset size whose majority vote is vectorised (it builds an [n_bootstrap, N, N] comparison)
MAX_VOTE_SUBSET = 64


def _as_float_array(values: list[Any]) -> np.ndarray | None:
    """``values`` as float64 when every one is a real number and none is NaN (else None: verl's loop decides)."""
    if not all(isinstance(v, Real) for v in values):
        return None
    array = np.asarray(values, dtype=np.float64)
    return None if np.isnan(array).any() else array


def _majority_values(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row of ``codes`` [B, N] (vote ids), the value [B] of the first sample of the most frequent vote; ties go
    to the vote that appears first in the row (verl's `calc_maj_val`: dict insertion order, then `max`)."""
    same = codes[:, :, None] == codes[:, None, :]  # [B, N, N]
    counts = same.sum(axis=2)  # [B, N]: how often position j's vote occurs in its row
    earlier = np.tril(np.ones(same.shape[1:], dtype=bool), k=-1)  # [N, N]: k < j
    first = ~(same & earlier).any(axis=2)  # [B, N]: position j is its vote's first occurrence
    best = np.where(first, counts, -1).argmax(axis=1)  # first position of the largest count
    return np.take_along_axis(values, best[:, None], axis=1)[:, 0]


def _majority_vectorised(fn: Callable, data: list[Any], idx: np.ndarray, calc_maj_val: Callable) -> np.ndarray | None:
    """Values [B] of verl's majority vote ``fn`` on every bootstrap row of ``idx`` [B, N], or None when ``fn`` is
    not `partial(calc_maj_val, vote_key=..., val_key=...)` or ``data`` is not votes with numeric values."""
    if not (isinstance(fn, functools.partial) and fn.func is calc_maj_val and not fn.args
            and set(fn.keywords) == {"vote_key", "val_key"} and idx.shape[1] <= MAX_VOTE_SUBSET):
        return None
    vote_key, val_key = fn.keywords["vote_key"], fn.keywords["val_key"]
    if not all(isinstance(d, dict) for d in data):
        return None
    values = _as_float_array([d[val_key] for d in data])
    if values is None:
        return None
    vote_ids: dict[Any, int] = {}
    try:
        codes = np.array([vote_ids.setdefault(d[vote_key], len(vote_ids)) for d in data], dtype=np.int64)
    except TypeError:  # an unhashable vote: verl's loop raises the same way
        return None
    return _majority_values(codes[idx], values[idx])


def make_bootstrap_metric(original: Callable, calc_maj_val: Callable) -> Callable:
    """A drop-in for verl's `bootstrap_metric(data, subset_size, reduce_fns, n_bootstrap=1000, seed=42)`."""
    if getattr(original, MARKER, False):
        return original

    def bootstrap_metric(data, subset_size, reduce_fns, n_bootstrap=1000, seed=42):
        np.random.seed(seed)
        n_data = len(data)
        if n_data == 0:
            return original(data, subset_size, reduce_fns, n_bootstrap=n_bootstrap, seed=seed)
        idx = np.random.choice(n_data, size=(n_bootstrap, subset_size), replace=True)
        results = []
        data = list(data)
        rows = None  # data[idx] as float64 [B, N], shared by best@N (np.max) and worst@N (np.min)
        for fn in reduce_fns:
            if fn is np.max or fn is np.min:
                if rows is None:
                    numbers = _as_float_array(data)
                    rows = None if numbers is None else numbers[idx]
                values = None if rows is None else (rows.max(axis=1) if fn is np.max else rows.min(axis=1))
            else:
                values = _majority_vectorised(fn, data, idx, calc_maj_val)
            if values is None:
                return original(data, subset_size, reduce_fns, n_bootstrap=n_bootstrap, seed=seed)
            results.append((float(np.mean(values)), float(np.std(values))))
        return results

    return mark_wrapper(bootstrap_metric, original, MARKER)


def patch_metric_utils(module: ModuleType) -> None:
    """Replace `metric_utils.bootstrap_metric` (looked up at call time by `process_validation_metrics`)."""
    module.bootstrap_metric = make_bootstrap_metric(module.bootstrap_metric, module.calc_maj_val)


def install() -> None:
    """Patch verl's metric utils now if imported, else right after their import (idempotent)."""

    after_import(METRIC_UTILS_MODULE, patch_metric_utils)
