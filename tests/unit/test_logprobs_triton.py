"""The fused Triton backend of the log-prob kernels, run on CPU by Triton's interpreter, and backend selection.

The interpreter executes the same kernel source as the GPU (tile by tile, in numpy), so the checks in
triton_interpreter_checks.py test the kernels' maths (online softmax merge across tiles, −inf logits, row selection,
the id-column fix-up of the backward, bf16) without a GPU. They run in one subprocess with TRITON_INTERPRET=1, since
the interpreter has to be on before triton is first imported. tests/unit/test_gpu_core.py checks the compiled kernels.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srpo_verl.core import logprobs
from srpo_verl.core.logprobs import resolve_backend, topk_logprobs_with_entropy

CHECKS = Path(__file__).with_name("triton_interpreter_checks.py")
CASES = [
    "hand_computed_distribution",
    "tiles_merge_across_blocks_and_match_log_softmax",
    "gather_on_selected_rows_with_repeated_ids_matches_autograd",
    "single_id_per_row_and_entropy_only_gradient",
    "update_gradient_does_not_depend_on_verls_in_place_cross_entropy",
    *(f"topk_with_entropy_gradient_equals_chunked[{d}-{t}]" for d in ("float32", "bfloat16") for t in (1.0, 0.6)),
]


@pytest.fixture(scope="module")
def interpreter_results():
    pytest.importorskip("triton", reason="triton is not installed (it comes with the `test` extra on Linux x86-64)")
    env = {**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, str(CHECKS)], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, f"{CHECKS.name} crashed:\n{out.stderr[-4000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_check_ran(interpreter_results):
    assert sorted(interpreter_results) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_fused_kernels_under_the_interpreter(interpreter_results, case):
    assert interpreter_results[case] == "ok", interpreter_results[case]


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="backend='fast' is not one of auto, chunked, triton"):
        topk_logprobs_with_entropy(torch.zeros(1, 4), 1, backend="fast")


def test_backend_from_environment(monkeypatch):
    monkeypatch.setenv(logprobs.BACKEND_ENV, "chunked")
    assert resolve_backend(None, torch.zeros(1, 4)) == "chunked"
    monkeypatch.setenv(logprobs.BACKEND_ENV, "cuda")
    with pytest.raises(ValueError, match="SRPO_VERL_LOGPROBS_BACKEND='cuda'"):
        resolve_backend(None, torch.zeros(1, 4))


def test_auto_on_cpu_is_chunked_and_forced_triton_without_the_package_fails_loudly(monkeypatch):
    assert resolve_backend("auto", torch.zeros(1, 4)) == "chunked"
    monkeypatch.setattr(logprobs, "_fused_module", lambda: ImportError("No module named 'triton'"))
    with pytest.raises(RuntimeError, match="needs the triton package.*No module named 'triton'"):
        resolve_backend("triton", torch.zeros(1, 4))
