"""The vectorised `bootstrap_metric` (srpo_verl/verl_ext/val_metrics.py) against verl 0.9.1's own, bit for bit."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import pytest

metric_utils = pytest.importorskip("verl.trainer.ppo.metric_utils")

from srpo_verl.verl_ext.val_metrics import make_bootstrap_metric  # noqa: E402

VERLS = getattr(metric_utils.bootstrap_metric, "__wrapped__", metric_utils.bootstrap_metric)
OURS = make_bootstrap_metric(VERLS, metric_utils.calc_maj_val)
MAJ = partial(metric_utils.calc_maj_val, vote_key="pred", val_key="val")


def both(data, subset_size, reduce_fns, seed=42):
    """(verl's result, ours, whether numpy's global RNG ends in the same state)."""
    theirs = VERLS(data, subset_size, reduce_fns, n_bootstrap=300, seed=seed)
    state_theirs = np.random.get_state()[1].copy()
    mine = OURS(data, subset_size, reduce_fns, n_bootstrap=300, seed=seed)
    return theirs, mine, bool((np.random.get_state()[1] == state_theirs).all())


@pytest.mark.parametrize("values", [
    [0.0, 1.0, 1.0, 0.0],
    [True, False, False, True, True],
    [3, -1, 7],
    [0.25, 1.0, 0.5, 0.75, 0.0, 1.0, 0.5, 0.125],
    [1.0],
])
@pytest.mark.parametrize("subset_size", [1, 2, 4, 16])
def test_best_and_worst_match_verls(values, subset_size):
    theirs, mine, same_state = both(values, subset_size, [np.max, np.min], seed=subset_size)
    assert mine == theirs and same_state


@pytest.mark.parametrize("case", range(40))
def test_majority_vote_matches_verls_with_ties(case):
    rng = random.Random(case)
    n = rng.choice([2, 3, 4, 8])
    preds = [rng.choice(["279", "297", "", None, 7]) for _ in range(n)]  # few distinct votes: many ties
    vals = [rng.choice([0.0, 1.0, 0.5, True]) for _ in range(n)]
    data = [{"val": v, "pred": p} for v, p in zip(vals, preds)]
    theirs, mine, same_state = both(data, rng.choice([2, 4, n]), [MAJ], seed=case)
    assert mine == theirs and same_state


@pytest.mark.parametrize("data, fns", [
    ([0.0, float("nan"), 1.0], [np.max, np.min]),           # NaN: Python comparisons decide, not numpy's max
    (["a", "b", "a"], [np.max, np.min]),                     # not numbers
    ([0.0, 1.0, 1.0], [np.mean]),                            # a reduce function we do not vectorise
    ([{"val": float("nan"), "pred": "x"}, {"val": 1.0, "pred": "y"}], [MAJ]),
    ([{"val": 1.0, "pred": ["unhashable"]}], [MAJ]),
], ids=["nan", "strings", "other_fn", "nan_vote_value", "unhashable_vote"])
def test_what_it_does_not_cover_goes_to_verls_loop(data, fns):
    try:
        expected = VERLS(data, 2, fns, n_bootstrap=50, seed=3)
    except Exception as error:  # verl's own failure is kept
        with pytest.raises(type(error)) as ours:
            OURS(data, 2, fns, n_bootstrap=50, seed=3)
        assert str(ours.value) == str(error)
        return
    got = OURS(data, 2, fns, n_bootstrap=50, seed=3)
    assert np.array_equal(np.array(got), np.array(expected), equal_nan=True)


def test_process_validation_metrics_is_unchanged_and_the_plugin_installed_ours(monkeypatch):
    """The whole validation aggregation (40 prompts x 4 samples, the toy verifier's variables) gives the same dict
    with verl's loop and with ours (scripts/bench/val_metrics.py times the toy's 150 x 4)."""
    rng = random.Random(0)
    uids = [f"p{i // 4}" for i in range(160)]
    infos = {"score": [float(rng.random() < 0.3) for _ in uids], "format_ok": [rng.random() < 0.9 for _ in uids],
             "pred": [rng.choice(["123", "132", "213"]) for _ in uids]}
    infos["acc"] = list(infos["score"])
    sources = ["synthetic"] * len(uids)

    def run(fn):
        monkeypatch.setattr(metric_utils, "bootstrap_metric", fn)
        out = metric_utils.process_validation_metrics(sources, uids, infos)
        return {s: {v: dict(m) for v, m in vm.items()} for s, vm in out.items()}

    assert run(OURS) == run(VERLS)
