#!/usr/bin/env python
"""Benchmark: top-K distillation (``srpo.distill_mode=topk``) against token-level distillation (``sampled_token``),
side by side on the same micro-batch through the real logits processor (srpo_verl.verl_ext.loss).

For each of the three passes it prints the bytes the engine returns per packed token (every output key, measured on
the outputs) and the median time of the processor call, and the ratio topk / sampled_token. The model forward is
the same in both modes and not included: these are the parts the mode changes.

    python scripts/bench/bench_distill_modes.py                                # CPU, V = 32,768, K = 100
    python scripts/bench/bench_distill_modes.py --device cuda --vocab 151936 --tokens 8192
"""

from __future__ import annotations

import argparse

import torch
from tensordict import TensorDict
from timing import median_seconds
from verl.utils import tensordict_utils as tu

from srpo_verl.verl_ext import loss as L
from srpo_verl.verl_ext.layout import pack_response_field
from srpo_verl.verl_ext.settings import SRPOSettings


def micro_batch(rows: int, prompt: int, response: int, vocab: int, k_query: int, phase: str, device: str):
    gen = torch.Generator().manual_seed(0)
    nested = lambda xs: torch.nested.as_nested_tensor(xs, layout=torch.jagged)  # noqa: E731
    prompts = [torch.randint(0, vocab, (prompt,), generator=gen) for _ in range(rows)]
    responses = [torch.randint(0, vocab, (response,), generator=gen) for _ in range(rows)]
    fields = {
        "prompts": nested(prompts), "responses": nested(responses),
        "input_ids": nested([torch.cat([p, r]) for p, r in zip(prompts, responses)]),
        L.DISTILL_MASK: nested([torch.ones(response) for _ in range(rows)]),
    }
    if phase == "teacher":
        fields[L.QUERY_IDS] = nested([torch.randint(0, vocab, (response, k_query), generator=gen) for _ in range(rows)])
    if phase == "update":
        lens, distill = torch.full((rows,), response), torch.ones(rows, dtype=torch.bool)
        teacher = torch.log_softmax(torch.randn(rows * response, max(k_query, 1), generator=gen), -1)
        fields[L.TEACHER_LOGP] = nested(list(pack_response_field(teacher, lens, distill).unbind()))
        ids = torch.randint(0, vocab, (rows * response, k_query), generator=gen)
        fields[L.TOPK_IDS] = nested(list(pack_response_field(ids, lens, distill).unbind()))
    data = TensorDict(fields, batch_size=rows).to(device)
    tu.assign_non_tensor(data, srpo_phase=phase)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--topk", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=1024, help="packed tokens per micro-batch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows, prompt = 4, 32
    response = args.tokens // rows - prompt
    modes = {
        "topk": SRPOSettings(method="sdpo", topk=args.topk, logits_chunk_size=256),
        "sampled_token": SRPOSettings(method="sdpo", distill_mode="sampled_token", alpha=1.0, logits_chunk_size=256),
    }
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(1, rows * (prompt + response), args.vocab, generator=gen).to(args.device)
    print(f"device {args.device}, vocabulary {args.vocab:,}, K = {args.topk}, {logits.shape[1]:,} packed tokens")
    print(f"{'pass':>8} | {'bytes/token topk':>16} {'sampled':>8} {'ratio':>6} | {'ms topk':>9} {'sampled':>9} "
          f"{'ratio':>6}")
    for phase in ("old", "teacher", "update"):
        measured = {}
        for mode, settings in modes.items():
            k_query = 1 if settings.sampled_token else args.topk
            data = micro_batch(rows, prompt, response, args.vocab, k_query, phase, args.device)
            grad = phase == "update"
            x = logits.clone().requires_grad_(grad)

            def call():
                out = L.srpo_loss(settings, None, data=data, student_logits=x)
                if grad:
                    (out[L.DIVERGENCE].sum() + out[L.LOG_PROBS].sum()).backward()
                return out

            out = call()
            size = sum(v.numel() * v.element_size() for v in out.values()) / logits.shape[1]
            measured[mode] = (size, median_seconds(call, args.device, args.repeats) * 1e3)
        (b_top, t_top), (b_tok, t_tok) = measured["topk"], measured["sampled_token"]
        print(f"{phase:>8} | {b_top:>16.0f} {b_tok:>8.0f} {b_top / b_tok:>6.1f} | {t_top:>9.1f} {t_tok:>9.1f} "
              f"{t_top / t_tok:>6.2f}")


if __name__ == "__main__":
    main()
