"""The math-verify worker process (run as `python -m srpo_verl.rewards.math_worker`; see `math_answer`).

Protocol, one JSON object per line: the parent writes `{"gold": str, "text": str}` on stdin; the worker answers
`{"gold_ok": bool, "pred": str | null, "correct": bool}` on stdout. The first line it writes is
`{"ready": true}` once math-verify is imported, or `{"ready": false, "error": "..."}`. It exits at the end of stdin.

math-verify's own timeouts are signal.alarm based; they are switched off here (`parsing_timeout=None`,
`timeout_seconds=None`) because the parent bounds each job by killing this process instead, which works from any
thread. This module imports nothing from srpo_verl, so the worker starts in the time math-verify takes to import.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache


def _serve() -> None:
    out = sys.stdout
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except Exception as err:  # noqa: BLE001  reported to the parent, which raises it as a configuration error
        out.write(json.dumps({"ready": False, "error": f"{type(err).__name__}: {err}"}) + "\n")
        out.flush()
        return
    gold_config = (LatexExtractionConfig(),)
    pred_config = (LatexExtractionConfig(), ExprExtractionConfig())

    @lru_cache(maxsize=4096)
    def parse_gold(gold: str):
        return parse("\\boxed{" + gold + "}", extraction_config=gold_config, parsing_timeout=None)

    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        job = json.loads(line)
        gold = parse_gold(job["gold"])
        pred = parse(job["text"], extraction_config=pred_config, parsing_timeout=None) if gold else []
        correct = bool(gold and pred and verify(gold, pred, timeout_seconds=None))
        # parse returns [sympy object, the extracted string]; the string is what the model wrote
        shown = str(pred[-1]) if pred else None
        out.write(json.dumps({"gold_ok": bool(gold), "pred": shown, "correct": correct}) + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()
