#!/usr/bin/env bash
# GPU check of the core for a machine with torch + CUDA only (no verl, no ray, no network): the `gpu`-marked tests
# (chunked and fused Triton kernels) and the kernel and loss benchmarks on CUDA, for both log-prob backends. Full GPU
# training runs are the recipes' job on real clusters.
#   bash scripts/gpu_check.sh            # tests + benchmarks; with $OUT set, a copy of the output goes to $OUT/
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n "${OUT:-}" ]]; then
    exec > >(tee "$OUT/gpu_check.log") 2>&1
fi

"$PYTHON" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: scripts/gpu_check.sh needs a GPU"
try:
    import triton
    triton_version = triton.__version__
except ImportError:
    triton_version = "not installed"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, triton {triton_version}")
PY

# The benchmarks run even when a test fails (their numbers help find why); the exit status reports the tests.
tests_rc=0
if "$PYTHON" -c "import pytest" 2>/dev/null; then
    "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/unit/test_gpu_core.py || tests_rc=$?
else
    # no pytest on the machine: call each test function directly
    "$PYTHON" - <<'PY' || tests_rc=$?
import importlib, importlib.util, sys, traceback
spec = importlib.util.spec_from_file_location("gpu_core", "tests/unit/test_gpu_core.py")
module = importlib.util.module_from_spec(spec)
class Skipped(Exception):
    pass
def importorskip(name, reason=None):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise Skipped(reason or f"{name} is not installed")
fake = sys.modules["pytest"] = type(sys)("pytest")
fake.mark = type("M", (), {"gpu": None})()
fake.importorskip = importorskip
spec.loader.exec_module(module)
failed = skipped = 0
names = sorted(n for n in dir(module) if n.startswith("test_"))
for name in names:
    try:
        getattr(module, name)()
        print(f"PASSED {name}")
    except Skipped as why:
        skipped += 1
        print(f"SKIPPED {name}: {why}")
    except Exception:
        failed += 1
        print(f"FAILED {name}")
        traceback.print_exc()
print(f"{len(names) - failed - skipped} passed, {skipped} skipped, {failed} failed")
sys.exit(1 if failed else 0)
PY
fi

"$PYTHON" scripts/bench/bench_logprobs.py --device cuda --tokens 1024 4096 16384 --chunk 1024 --dtype bfloat16
"$PYTHON" scripts/bench/bench_logprobs.py --device cuda --tokens 4096 --chunk 1024 --dtype float32
for backend in chunked triton; do
    "$PYTHON" scripts/bench/bench_loss.py --device cuda --vocab 151936 --rows 16 --length 1024 --dtype bfloat16 \
        --fractions 0.0 0.25 0.5 1.0 --backend "$backend"
done
"$PYTHON" scripts/bench/bench_triton_tiles.py

if [[ "$tests_rc" != 0 ]]; then
    echo "[gpu_check] the gpu tests FAILED (exit $tests_rc); benchmarks above ran anyway"
fi
exit "$tests_rc"
