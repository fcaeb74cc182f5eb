#!/usr/bin/env python
"""Verifier throughput on one core: verifications per second for each verifier (issue 5; not a timed test), and
the time of one verification on adversarial outputs (issue 12).

    python scripts/bench/bench_verifiers.py [--seconds 2] [--splits DIR]

DIR holds the SDPO split files (default: $SRPO_VERL_SPLITS when set). Completions are built from the real split rows
when the splits are present (otherwise from built-in rows): a
realistic mix per verifier of correct answers, wrong answers and malformed outputs, with reasoning of typical
length (~1.5 k characters for MCQ, ~0.5 k for tool use). Targets: >= 5,000/s MCQ, >= 1,000/s tool use.
Adversarial outputs (up to the 2 MiB completion bound: megabyte nested or wide Action Inputs whose tool names match,
10^4-deep nesting, floods of markers, newlines or tags): best of 3 per case, target <= 10 ms each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from srpo_verl.jsonl import load_jsonl  # noqa: E402
from srpo_verl.rewards import compute_score  # noqa: E402
from srpo_verl.rewards.result import MAX_COMPLETION_CHARS  # noqa: E402
from srpo_verl.rewards.tooluse import format_calls, parse_gold  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"sciknoweval": 5000.0, "tooluse": 1000.0, "synthetic": 5000.0}
ADVERSARIAL_TARGET_S = 0.010
REASONING = ("Let me work through the options one at a time, checking each against the data given. " * 18).strip()


def mcq_cases(splits: Path | None) -> list[tuple]:
    path = splits / "sciknoweval" / "chemistry" / "test.json" if splits else None
    golds = [row["answer"] for row in load_jsonl(path)] if path and path.is_file() else list("ABCD") * 50
    cases = []
    for i, gold in enumerate(golds):
        letter = gold if i % 2 == 0 else ("B" if gold == "A" else "A")
        body = f"<reasoning>\n{REASONING}\n</reasoning>\n"
        completion = body + (f"<answer>\n{letter}\n</answer>" if i % 5 else "The answer is " + letter)
        cases.append(("sciknoweval", completion, gold))
    return cases


def tooluse_cases(splits: Path | None) -> list[tuple]:
    path = splits / "tooluse" / "test.json" if splits else None
    if path and path.is_file():
        golds = [row["answer"] for row in load_jsonl(path)]
    else:
        golds = [json.dumps([{"Action": "getRates", "Action_Input": json.dumps({"base": "USD", "n": i})}])
                 for i in range(68)]
    cases = []
    for i, gold in enumerate(golds):
        calls = parse_gold(gold).calls
        text = format_calls(calls)
        if i % 3 == 1:
            text = text.replace('"', "'", 2)  # malformed JSON
        elif i % 3 == 2:
            text = format_calls(calls[:-1]) if len(calls) > 1 else text.replace("}", ', "extra": 1}', 1)
        cases.append(("tooluse", f"Thought: {REASONING[:400]}\n{text}", gold))
    return cases


def synthetic_cases() -> list[tuple]:
    return [("synthetic", f"{i} plus {i} is <answer>{2 * i if i % 2 else 2 * i + 1}</answer>", str(2 * i))
            for i in range(200)]


def adversarial_cases() -> list[tuple[str, tuple]]:
    """(name, compute_score arguments) of the slowest inputs found for each verifier, all within the 2 MiB bound."""
    full = MAX_COMPLETION_CHARS - 256
    gold = json.dumps([{"Action": "getRates", "Action_Input": json.dumps({"base": "USD", "symbols": "CAD"})}])
    call = 'Action: getRates\nAction Input: {"base": "USD", "symbols": "CAD"}\n'
    unit = '{"a": [' * 40 + "1" + "]}" * 40
    def nested(chars):
        return '{"base": "USD", "x": [' + ", ".join([unit] * ((chars - 64) // (len(unit) + 2))) + "]}"

    wide = "{" + ", ".join(f'"k{i:07d}": 1' for i in range((full - 64) // 15)) + "}"
    wide_8k = '{"base": "USD", ' + ", ".join(f'"k{i:05d}": {i}' for i in range(550)) + "}"
    tool = [
        ("2 MiB nested Action Input, names match", "Action: getRates\nAction Input: " + nested(full)),
        ("2 MiB wide Action Input, names match", "Action: getRates\nAction Input: " + wide),
        ("8 KiB wide Action Input, names match", "Action: getRates\nAction Input: " + wide_8k),
        ("16 KiB nested Action Input, names match", "Action: getRates\nAction Input: " + nested(16_000)),
        ("10^4-deep Action Input", "Action: getRates\nAction Input: " + '{"a": ' * 10_000 + "1" + "}" * 10_000),
        ("2 MiB of Action/Input pairs", "Action: getRates\nAction Input: {}\n" * (full // 34)),
        ("2 MiB of 'Action ' words", "Action " * (full // 7)),
        ("2 MiB of newlines", "\n" * full),
        ("2 MiB Action line", "Action: " + "g" * (full - 40) + "\nAction Input: {}"),
        ("2 MiB thought, right call", "Thought: " + "z" * (full - 100) + "\n" + call),
        ("126 calls after 8 KiB thoughts", ("Thought: " + "t" * 8000 + "\n" + call) * 126),
    ]
    mcq = [
        ("2 MiB answer block", "<answer>" + "B" * (full - 20) + "</answer>"),
        ("2 MiB of whitespace", " " * full),
        ("2 MiB of <answer> tags", "<answer>" * (full // 8)),
        ("2 MiB of </answer> tags", "</answer>" * (full // 9)),
    ]
    return ([(f"tooluse: {name}", ("tooluse", text, gold)) for name, text in tool]
            + [(f"sciknoweval: {name}", ("sciknoweval", text, "B")) for name, text in mcq])


def worst_case_seconds(case: tuple, repeats: int = 3) -> float:
    """Best of `repeats` timings of one verification (the best: the machine's noise only ever adds time)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        compute_score(*case)
        best = min(best, time.perf_counter() - start)
    return best


def throughput(cases: list[tuple], seconds: float) -> tuple[float, float]:
    """(verifications per second, mean score) over repeated passes for at least `seconds`."""
    calls, score_sum, start = 0, 0.0, time.perf_counter()
    while True:
        for case in cases:
            score_sum += compute_score(*case)["score"]
        calls += len(cases)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed, score_sum / calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per verifier")
    parser.add_argument("--splits", type=Path, default=os.environ.get("SRPO_VERL_SPLITS") or None,
                        help="folder of the SDPO split files (default: $SRPO_VERL_SPLITS)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    source = "real split rows" if args.splits and args.splits.is_dir() else "built-in rows (splits not found)"
    print(f"verifier throughput on one core ({source}; {args.seconds:.1f} s each)")
    print(f"{'verifier':<12} {'cases':>6} {'mean len':>9} {'score':>6} {'verif/s':>10} {'target':>8}  ok")
    failed = False
    for name, cases in (("sciknoweval", mcq_cases(args.splits)), ("tooluse", tooluse_cases(args.splits)),
                        ("synthetic", synthetic_cases())):
        rate, mean_score = throughput(cases, args.seconds)
        mean_len = sum(len(case[1]) for case in cases) / len(cases)
        ok = rate >= TARGETS[name]
        failed |= not ok
        print(f"{name:<12} {len(cases):>6} {mean_len:>9.0f} {mean_score:>6.2f} {rate:>10,.0f} {TARGETS[name]:>8,.0f}  "
              f"{'yes' if ok else 'NO'}")
    print(f"\none verification on adversarial outputs (best of 3; target <= {ADVERSARIAL_TARGET_S * 1e3:.0f} ms)")
    print(f"{'case':<52} {'chars':>9} {'ms':>7}  ok")
    for name, case in adversarial_cases():
        seconds = worst_case_seconds(case)
        ok = seconds <= ADVERSARIAL_TARGET_S
        failed |= not ok
        print(f"{name:<52} {len(case[1]):>9,} {seconds * 1e3:>7.2f}  {'yes' if ok else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
