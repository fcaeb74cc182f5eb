#!/usr/bin/env python
"""Benchmark: memory per rank of one SRPO update micro-batch with Ulysses SP=2 against SP=1, side by side.

One long sequence (prompt + response, the response distilled: top-K ids and teacher log-probs stored, as in the
update phase) goes through verl's own Ulysses path on a random Qwen3-shaped model: ``ulysses_pad_and_slice_inputs``,
``apply_monkey_patch`` (its all-to-all around attention), the SRPO logits processor on the rank's slice,
``gather_outputs_and_unpad``, the routed divergence and its backward. SP=1 runs in one process, SP=2 in two (gloo),
each rank a fresh process with one thread; attention is the CPU backend's varlen stand-in (srpo_verl/cpu/attention.py).

Per rank it reports the peak resident memory of the pass above the memory held just before it (Linux VmHWM, reset
through /proc/self/clear_refs), the loss (the same maths on both layouts) and the all-to-alls run.

    python scripts/bench/bench_sequence_parallel_memory.py                       # response 4096, vocab 32768
    python scripts/bench/bench_sequence_parallel_memory.py --response 8192 --vocab 65536
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


def _peak_reset() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _micro_batch(args, gen):
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu

    from srpo_verl.verl_ext import loss as L

    prompt = torch.randint(0, args.vocab, (args.prompt,), generator=gen)
    response = torch.randint(0, args.vocab, (args.response,), generator=gen)
    topk = torch.randint(0, args.vocab, (args.response, args.topk), generator=gen)
    teacher = torch.log_softmax(torch.randn(args.response, args.topk, generator=gen), -1) - 1.0

    def nested(t):
        return torch.nested.as_nested_tensor([t], layout=torch.jagged)

    fields = {
        "prompts": nested(prompt), "responses": nested(response), "input_ids": nested(torch.cat([prompt, response])),
        "response_mask": nested(torch.ones(args.response, dtype=torch.long)),
        L.DISTILL_MASK: nested(torch.ones(args.response)), L.TOPK_IDS: nested(topk.to(torch.int32)),
        L.TEACHER_LOGP: nested(teacher),
    }
    td = TensorDict(fields, batch_size=1)
    tu.assign_non_tensor(td, srpo_phase="update")
    return td


def rank_main(rank: int, sp: int, port: int, args, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=sp)
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from transformers.integrations import flash_attention
    import verl.models.transformers.monkey_patch as verl_patch
    import verl.utils.ulysses as ulysses
    from verl.models.transformers.monkey_patch import apply_monkey_patch

    from srpo_verl.cpu import attention as A
    from srpo_verl.verl_ext import loss as L
    from srpo_verl.verl_ext.settings import SRPOSettings

    A.register_cpu_flash_attention()
    A.replace_flash_kernel(flash_attention)
    A.replace_flash_kernel(verl_patch)
    A.count_all_to_all(ulysses)

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=3 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4, head_dim=32,
                         max_position_embeddings=args.prompt + args.response + 8, tie_word_embeddings=False,
                         attn_implementation=A.CPU_VARLEN_ATTENTION)
    model = Qwen3ForCausalLM(config)
    apply_monkey_patch(model, ulysses_sp_size=sp, use_remove_padding=True)
    ulysses.set_ulysses_sequence_parallel_group(dist.group.WORLD if sp > 1 else None)
    data = _micro_batch(args, torch.Generator().manual_seed(1))
    settings = SRPOSettings(topk=args.topk)
    input_ids = data["input_ids"].values().unsqueeze(0)
    positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
    local_ids, local_pos, pad = ulysses.ulysses_pad_and_slice_inputs(input_ids, positions, sp_size=sp)

    _peak_reset()
    before_kb = _status_kb("VmRSS")
    logits = model(input_ids=local_ids, position_ids=local_pos, attention_mask=None, use_cache=False).logits
    outputs = L.srpo_loss(settings, None, data=data, student_logits=logits)
    gathered = {k: ulysses.gather_outputs_and_unpad(v.squeeze(0), gather_dim=0, unpad_dim=0, padding_size=pad)
                if sp > 1 else v.squeeze(0) for k, v in outputs.items()}
    # the routed loss's shape on a distilled row: −(sampled-token log-prob) + divergence, mean over the response
    loss = (gathered[L.DIVERGENCE].sum() - gathered[L.LOG_PROBS].sum()) / args.response
    loss.backward()
    peak_kb = _status_kb("VmHWM")
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    if sp > 1:  # FSDP averages over the ranks; verl's gather backward scaled each rank's part by the SP size
        dist.all_reduce(grad)
        grad /= sp
    grad_norm = grad.norm()
    result = dict(sp=sp, rank=rank, tokens=int(local_ids.shape[1]), peak_mb=(peak_kb - before_kb) / 1024,
                  loss=float(loss.detach()), grad_norm=float(grad_norm), all_to_alls=A.all_to_all_calls(), logits_mb=logits.numel() * 4 / 2**20)
    with open(os.path.join(out_dir, f"sp{sp}_rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", type=int, default=256)
    parser.add_argument("--response", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--topk", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        for sp in (1, 2):
            mp.spawn(rank_main, args=(sp, _free_port(), args, out), nprocs=sp, join=True)
        rows = {(r["sp"], r["rank"]): r for r in (json.load(open(os.path.join(out, n))) for n in os.listdir(out))}
    one, two = rows[(1, 0)], [rows[(2, 0)], rows[(2, 1)]]
    print(f"one sequence of {args.prompt} + {args.response} tokens (response distilled, top-{args.topk}), vocab "
          f"{args.vocab}, hidden {args.hidden}, {args.layers} layers, fp32, one thread per rank")
    print(f"{'':40s} {'SP=1':>12s} {'SP=2 rank 0':>12s} {'SP=2 rank 1':>12s} {'SP=2 / SP=1':>12s}")
    for label, key, fmt in (("tokens per rank", "tokens", "{:12d}"), ("logits per rank (MiB)", "logits_mb", "{:12.1f}"),
                            ("peak RSS of the update (MiB)", "peak_mb", "{:12.1f}"), ("loss", "loss", "{:12.6f}"),
                            ("grad norm (as FSDP reduces it)", "grad_norm", "{:12.6f}"),
                            ("Ulysses all-to-alls", "all_to_alls", "{:12d}")):
        ratio = max(r[key] for r in two) / one[key] if one[key] else float("nan")
        print(f"{label:40s} " + " ".join(fmt.format(r[key]) for r in [one, *two]) + f" {ratio:12.3f}")


if __name__ == "__main__":
    main()
