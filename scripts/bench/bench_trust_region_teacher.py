#!/usr/bin/env python
"""The trust-region teacher pass against the EMA teacher pass, side by side in one run, on CPU.

One teacher micro-batch through a random Qwen3-shaped model, as the SRPO worker runs it (the engine's forward, then
the logits processor of srpo_verl.verl_ext.loss on the packed [1, nnz, V] logits):
  ema           one forward (the teacher's weights) + the ``teacher`` phase;
  trust_region  the actor's forward + the ``teacher_student`` phase (stash its response logits), then the base
                teacher's forward + the ``teacher`` phase (mix, gather).
Each variant runs in a fresh subprocess; it reports the peak resident memory above the loaded models (ru_maxrss
after the pass minus RSS before it) and the median pass time over --repeats. Engine overheads (FSDP, offload) are
not in these numbers; the logits and the stash are.

    python scripts/bench/bench_trust_region_teacher.py
    python scripts/bench/bench_trust_region_teacher.py --vocab 151936 --hidden 512 --response 1024
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def run_variant(args) -> dict:
    import psutil
    import torch
    from tensordict import TensorDict
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from verl.utils import tensordict_utils as tu

    from srpo_verl.verl_ext import loss as L
    from srpo_verl.verl_ext.settings import SRPOSettings

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=3 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=args.hidden // 4, max_position_embeddings=args.prompt + args.response + 8,
                         attn_implementation="sdpa")
    models = [Qwen3ForCausalLM(config).eval() for _ in range(2 if args.variant == "trust_region" else 1)]
    rows, length = args.rows, args.prompt + args.response
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, args.vocab, (rows, length), generator=gen)

    def nested(values):
        return torch.nested.as_nested_tensor(list(values), layout=torch.jagged)

    def micro_batch(phase):
        data = TensorDict({
            "prompts": nested(input_ids[:, :args.prompt]), "responses": nested(input_ids[:, args.prompt:]),
            "input_ids": nested(input_ids),
            L.QUERY_IDS: nested(torch.randint(0, args.vocab, (rows, args.response, args.topk), generator=gen)),
        }, batch_size=rows)
        tu.assign_non_tensor(data, srpo_phase=phase)
        return data

    teacher_data, student_data = micro_batch("teacher"), micro_batch("teacher_student")
    settings = SRPOSettings(topk=args.topk, **({"teacher": "trust_region", "trust_region_rate": 0.1}
                                               if args.variant == "trust_region" else {}))
    stash = L.StudentLogitsStash()

    def packed_logits(model):
        return (model(input_ids).logits / args.temperature).reshape(1, rows * length, args.vocab)

    def one_pass():
        with torch.no_grad():
            if args.variant == "trust_region":
                L.srpo_loss(settings, None, data=student_data, student_logits=packed_logits(models[1]), stash=stash)
            out = L.srpo_loss(settings, None, data=teacher_data, student_logits=packed_logits(models[0]), stash=stash)
        return out

    before = psutil.Process().memory_info().rss
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {"variant": args.variant, "extra_peak_mib": (peak - before) / 2**20, "pass_s": statistics.median(times),
            "logits_mib": rows * length * args.vocab * 4 / 2**20,
            "response_logits_mib": rows * args.response * args.vocab * 4 / 2**20}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=4, help="teacher sequences in the micro-batch")
    parser.add_argument("--prompt", type=int, default=256, help="teacher prompt tokens per row")
    parser.add_argument("--response", type=int, default=512, help="response tokens per row")
    parser.add_argument("--topk", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=("ema", "trust_region"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return 0
    results = {}
    for variant in ("ema", "trust_region"):
        done = subprocess.run([sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
                               "--variant", variant], capture_output=True, text=True, check=True)
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    ema, tr = results["ema"], results["trust_region"]
    print(f"random Qwen3 (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}); one teacher micro-batch of "
          f"{args.rows} x ({args.prompt} prompt + {args.response} response) tokens; K = {args.topk}; median of "
          f"{args.repeats}")
    print(f"  packed logits {ema['logits_mib']:.0f} MiB; response logits (the stash) {ema['response_logits_mib']:.0f} MiB")
    print("| teacher | extra peak RSS (MiB) | pass time (s) |")
    print("|---|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['extra_peak_mib']:.0f} | {r['pass_s']:.3f} |")
    print(f"trust_region / ema: extra peak {tr['extra_peak_mib'] / ema['extra_peak_mib']:.2f}x "
          f"(+{tr['extra_peak_mib'] - ema['extra_peak_mib']:.0f} MiB), time {tr['pass_s'] / ema['pass_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
