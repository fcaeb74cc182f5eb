#!/usr/bin/env bash
# Set up the environment (idempotent) and run the test suite: unit tier, then the e2e tier.
#   bash scripts/test.sh                 # everything CPU can run (gpu-marked tests skip with the reason)
#   bash scripts/test.sh -m "not e2e"    # any pytest arguments replace the default selection
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
export PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline
exec .venv/bin/python -m pytest "${@:--q}"
