#!/usr/bin/env python
"""Table 1 (best avg@16 within 1h/5h/10h of training time, and by training step) and curves from verl run logs.

    python scripts/report/make_report.py --root runs/qwen3_8b --plots report/qwen3_8b.png

See docs/REPORT.md for the layout, the wall-clock definition and all options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from srpo_verl.report.cli import report_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(report_main())
