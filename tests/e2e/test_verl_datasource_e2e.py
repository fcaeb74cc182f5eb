"""End-to-end: SRPO on a data source only verl knows, scored by verl's own scorer through srpo_verl's reward function.

The tiny task's rows are rewritten to verl's search-R1 QA source (`data_source=searchR1_nq`, ground truth
`{"target": [answer]}`): verl's `search_r1_like_qa_em` reads the last `<answer>...</answer>` block, which is the tiny
model's native format, so the step has right and wrong rollouts. One SRPO step (1 rank) must run, route, and every
dumped reward must equal verl's `default_compute_score` on the dumped rollout (verl 0.9.1's training dump holds
input, output, gts, score, step and uid: the reward-extra keys are not in it).
"""

from __future__ import annotations

import ast
import re

import pandas as pd
import pytest

from srpo_verl.bench.cpu_run import CpuRun

pytestmark = pytest.mark.e2e

SOURCE = "searchR1_nq"


def _as_verl_source(src, dst) -> int:
    frame = pd.read_parquet(src)
    frame["data_source"] = SOURCE
    frame["reward_model"] = [{"style": "rule", "ground_truth": {"target": [row["ground_truth"]]}}
                             for row in frame["reward_model"]]
    frame.to_parquet(dst)
    return len(frame)


@pytest.fixture(scope="module")
def verl_source_run(tiny_assets, tmp_path_factory):
    model, train, test = tiny_assets
    data = tmp_path_factory.mktemp("verl_source_data")
    assert _as_verl_source(train, data / "train.parquet") > 0 and _as_verl_source(test, data / "test.parquet") > 0
    return CpuRun(tmp_path_factory.mktemp("verl_source"), model, data / "train.parquet", data / "test.parquet",
                  "srpo.method=srpo", "trainer.total_training_steps=1")


def _gold(gts) -> list[str]:
    """The target list of a dumped ground truth: a JSON object, or a repr when verl fell back to default=str."""
    if isinstance(gts, dict):
        return list(gts["target"])
    inner = re.search(r"'target':\s*(?:array\()?(\[.*?\])", gts)
    assert inner, gts
    return ast.literal_eval(inner.group(1))


def test_srpo_step_on_a_verl_only_source_uses_verls_scorer(verl_source_run):
    from verl.utils.reward_score import default_compute_score

    run = verl_source_run
    run.check([1])
    rows = run.rollouts(1)
    assert rows
    for row in rows:
        expected = default_compute_score(SOURCE, row["output"], {"target": _gold(row["gts"])})
        assert row["score"] == pytest.approx(expected), row["output"]
    scores = {row["score"] for row in rows}
    assert scores == {0.0, 1.0}, f"expected right and wrong rollouts, got scores {scores}"
    metrics = run.steps[1]
    assert metrics["srpo/route/grpo_frac"] + metrics["srpo/route/sdpo_frac"] == pytest.approx(1.0)
    assert metrics["srpo/route/sdpo_frac"] > 0, "no failed rollout with a correct sibling was routed to SDPO"
