"""End-to-end: the SDPO and SRPO gradients do not depend on which cross-entropy verl picks (issue 11 §1).

verl 0.9.1 uses flash-attn's Triton cross-entropy for sampled-token log-probs whenever `flash_attn` imports; its
backward writes d loss / d logits into the logits buffer, the tensor srpo_verl's autograd Functions saved. Here
every process of the real trainer imports a pure-torch stand-in with that in-place backward
(tests/fixtures/inplace_flash_attn, put on the subprocess's PYTHONPATH, so every Ray worker inherits it), and one
step of SDPO and of SRPO must give the same grad norm, to 1e-6 relative, as the torch-path runs of the shared
session fixtures `sdpo` / `srpo` (tests/e2e/conftest.py, same seed, same step-1 batch). The stand-in logs its
import and every call: verl must have imported it, and must never have called it (the worker sets
`distillation_only` and the logits processor returns the log-probs). Before the fix these runs measured SDPO
0.00877 against 0.00123 (docs/SRPO_ON_VERL.md, "Sampled-token log-probs").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from srpo_verl.bench.cpu_run import CpuRun

pytestmark = pytest.mark.e2e

STANDIN = Path(__file__).resolve().parents[1] / "fixtures" / "inplace_flash_attn"
LOG_ENV = "SRPO_VERL_INPLACE_CE_LOG"
# The packed branch every GPU user runs (flash-attn installed means remove-padding on), where verl calls its
# cross-entropy with inplace_backward=True; eager attention builds the block-causal mask from the packed
# position ids, so the step equals the padded fixture's.
REMOVE_PADDING = ("actor_rollout_ref.model.use_remove_padding=true",)


def run_with_standin(workdir: Path, tiny_assets, method: str) -> tuple[CpuRun, dict[str, list[str]]]:
    """One step of ``method`` with the in-place stand-in importable by every process; (run, events per pid)."""
    log_dir = workdir / "inplace_ce"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(STANDIN), os.environ.get("PYTHONPATH")])))
        patch.setenv(LOG_ENV, str(log_dir))
        patch.delenv("VERL_DISABLE_FLASH_ATTN_CE", raising=False)  # verl would take the stand-in if it were called
        run = CpuRun(workdir, *tiny_assets, f"srpo.method={method}", "trainer.total_training_steps=1",
                     *REMOVE_PADDING)
    events = {p.stem: p.read_text().splitlines() for p in sorted(log_dir.glob("*.log"))} if log_dir.is_dir() else {}
    return run, events


@pytest.fixture(scope="module")
def sdpo_inplace(tiny_assets, tmp_path_factory):
    return run_with_standin(tmp_path_factory.mktemp("sdpo_inplace"), tiny_assets, "sdpo")


@pytest.fixture(scope="module")
def srpo_inplace(tiny_assets, tmp_path_factory):
    return run_with_standin(tmp_path_factory.mktemp("srpo_inplace"), tiny_assets, "srpo")


def check_same_step(baseline: CpuRun, inplace: tuple[CpuRun, dict[str, list[str]]], assert_same_step) -> None:
    run, events = inplace
    run.check([1])
    assert "'use_remove_padding': True" in run.log_path.read_text(), "the run's printed config is not packed"
    importers = {line for lines in events.values() for line in lines if line.startswith("import")}
    # verl's torch_functional (its `from flash_attn.ops.triton.cross_entropy import cross_entropy_loss`) loaded the
    # stand-in, in the driver and at least the actor worker: verl's flash-attn path was live in every process
    assert "import by=verl.utils.torch_functional" in importers, events
    assert all(line.startswith("import by=verl.") for line in importers), importers
    assert len(events) >= 2, events
    calls = [line for lines in events.values() for line in lines if not line.startswith("import")]
    assert calls == [], f"verl's cross-entropy ran in an SRPO-worker pass: {calls[:5]}"
    # the same step-1 batch (by session: the dump's order is the completion order), routes, teacher outputs, entropy
    # weights, loss parts and grad norm as the padded torch-path run
    assert run.steps[1]["actor/grad_norm"] > 0
    assert_same_step(baseline, run, 1)


@pytest.mark.slow  # its own verl launch; the default suite runs SDPO packed on 2 ranks (test_multirank_e2e.py) and
# the in-place guard on SRPO, whose SDPO-routed rows take the same update path
def test_sdpo_packed_step_with_verls_in_place_cross_entropy_equals_the_padded_step(sdpo, sdpo_inplace,
                                                                                   assert_same_step):
    sdpo.check([1])
    check_same_step(sdpo, sdpo_inplace, assert_same_step)


def test_srpo_packed_step_with_verls_in_place_cross_entropy_equals_the_padded_step(srpo, srpo_inplace,
                                                                                   assert_same_step):
    srpo.check([1, 2, 3])
    assert srpo.steps[1]["srpo/route/sdpo_frac"] > 0, "step 1 routed nothing to SDPO: the comparison is empty"
    check_same_step(srpo, srpo_inplace, assert_same_step)
