#!/usr/bin/env bash
# GPU check of the core for a machine with torch + CUDA only (no verl, no ray, no network): the `gpu`-marked tests
# and the kernel benchmarks on CUDA. Full GPU training runs are the recipes' job on real clusters.
#   bash scripts/gpu_check.sh            # tests + benchmarks; writes nothing outside $OUT (if set)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: scripts/gpu_check.sh needs a GPU"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}")
PY

if "$PYTHON" -c "import pytest" 2>/dev/null; then
    "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/unit/test_gpu_core.py
else
    # no pytest on the machine: call each test function directly
    "$PYTHON" - <<'PY'
import importlib.util, sys, traceback
spec = importlib.util.spec_from_file_location("gpu_core", "tests/unit/test_gpu_core.py")
module = importlib.util.module_from_spec(spec)
sys.modules["pytest"] = type(sys)("pytest")
sys.modules["pytest"].mark = type("M", (), {"gpu": None})()
spec.loader.exec_module(module)
failed = 0
names = sorted(n for n in dir(module) if n.startswith("test_"))
for name in names:
    try:
        getattr(module, name)()
        print(f"PASSED {name}")
    except Exception:
        failed += 1
        print(f"FAILED {name}")
        traceback.print_exc()
print(f"{len(names) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
fi

"$PYTHON" scripts/bench/bench_logprobs.py --device cuda --tokens 1024 4096 16384 --chunk 1024 --dtype bfloat16
