#!/usr/bin/env python
"""avg@n and unbiased pass@k from verl validation dumps (trainer.validation_data_dir/<step>.jsonl).

    python scripts/eval/score_generations.py runs/eval/qwen3_8b/srpo-step450/chemistry --k 1,4,8,16

See docs/REPORT.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from srpo_verl.report.cli import score_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(score_main())
