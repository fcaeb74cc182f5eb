"""Full-model EMA teacher vs LoRA adapter EMA teacher: teacher state bytes, worker peak RSS, EMA time per step.

Each mode runs in a fresh process (its own peak RSS) on the same random Qwen3-shaped fp32 actor:
  full  the teacher engine's state today: an fp32 copy of every actor parameter, EMA by srpo_verl.core.ema;
  lora  peft LoRA on the actor (all-linear, verl's FSDP engine's adapter) and srpo_verl's AdapterEMA: an fp32 copy
        of the adapters only, EMA by the same srpo_verl.core.ema.
Then one table with the ratios side by side, and the extrapolation to Qwen3-8B from its config (parameter counts;
the adapter count by the formula checked against peft's count on the measured model).

    .venv/bin/python scripts/bench/bench_lora_ema.py [--hidden 1024 --layers 12 --rank 64 --steps 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

#: Qwen3-8B's config.json (the shapes that set the parameter counts)
QWEN3_8B = dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=False)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_config(hidden: int, layers: int) -> dict:
    heads = hidden // 64
    return dict(vocab_size=32000, hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=64,
                tie_word_embeddings=False)


def all_linear_adapter_params(config: dict, rank: int) -> int:
    """r·(in + out) summed over the decoder's linear layers (peft's all-linear: every nn.Linear but the lm_head)."""
    h, i, d = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * d, config["num_key_value_heads"] * d
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
    return rank * per_layer * config["num_hidden_layers"]


def total_params(config: dict) -> int:
    h, i, d, v = config["hidden_size"], config["intermediate_size"], config["head_dim"], config["vocab_size"]
    q, kv = config["num_attention_heads"] * d, config["num_key_value_heads"] * d
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h + 2 * d  # projections, 2 RMSNorms, q/k norms
    return v * h * (1 if config["tie_word_embeddings"] else 2) + per_layer * config["num_hidden_layers"] + h


def run_mode(mode: str, hidden: int, layers: int, rank: int, steps: int) -> dict:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from srpo_verl.core.ema import ema_update_

    torch.manual_seed(0)
    config = model_config(hidden, layers)
    actor = Qwen3ForCausalLM(Qwen3Config(**config)).float()
    actor_params = sum(p.numel() for p in actor.parameters())
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        from srpo_verl.verl_ext.adapter_teacher import AdapterEMA

        actor = get_peft_model(actor, LoraConfig(task_type="CAUSAL_LM", r=rank, lora_alpha=2 * rank,
                                                 target_modules="all-linear", bias="none"))
        before = rss_mib()
        ema = AdapterEMA(actor)
        state_bytes, state_params = ema.nbytes, sum(t.numel() for t in ema.tensors.values())
        assert state_params == all_linear_adapter_params(config, rank), (state_params, config)

        def update():
            return ema.update(actor, 0.05)
    else:
        before = rss_mib()
        params = [p.data for p in actor.parameters()]
        teacher = [p.detach().clone().float() for p in params]
        state_bytes = sum(t.numel() * 4 for t in teacher)
        state_params = sum(t.numel() for t in teacher)

        def update():
            return ema_update_(teacher, params, 0.05)
    after_build = rss_mib()
    times, cpu_times = [], []
    with torch.no_grad():
        for step in range(steps):
            for p in actor.parameters():  # the optimizer step moved the actor (cost not timed)
                if p.requires_grad:
                    p.data.add_(1e-4)
            started, cpu_started = time.perf_counter(), time.process_time()
            assert update().applied
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
    return {"mode": mode, "actor_params": actor_params, "state_params": state_params, "state_bytes": state_bytes,
            "rss_before_teacher_mib": before, "rss_after_teacher_mib": after_build, "peak_rss_mib": peak_rss_mib(),
            "ema_s_median": statistics.median(times), "ema_s_all": times,
            "ema_cpu_s_median": statistics.median(cpu_times), "config": config}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--mode", choices=("full", "lora"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.hidden, args.layers, args.rank, args.steps)))
        return
    results = {}
    for mode in ("full", "lora"):
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--hidden", str(args.hidden), "--layers",
                              str(args.layers), "--rank", str(args.rank), "--steps", str(args.steps)],
                             check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    full, lora = results["full"], results["lora"]
    print(f"random Qwen3-shaped actor: {full['actor_params'] / 1e6:.1f} M parameters (fp32), hidden {args.hidden}, "
          f"{args.layers} layers; LoRA r={args.rank} all-linear; {args.steps} EMA steps")
    rows = [
        ("teacher state MiB", full["state_bytes"] / 2**20, lora["state_bytes"] / 2**20),
        ("RSS added by the teacher MiB", full["rss_after_teacher_mib"] - full["rss_before_teacher_mib"],
         lora["rss_after_teacher_mib"] - lora["rss_before_teacher_mib"]),
        ("worker peak RSS MiB", full["peak_rss_mib"], lora["peak_rss_mib"]),
        ("EMA wall s/step (median)", full["ema_s_median"], lora["ema_s_median"]),
        ("EMA CPU s/step (median, all threads)", full["ema_cpu_s_median"], lora["ema_cpu_s_median"]),
    ]
    print(f"| | full EMA | LoRA EMA | full / LoRA |\n|---|---|---|---|")
    for name, f, l in rows:
        print(f"| {name} | {f:.4g} | {l:.4g} | {f / l if l else float('inf'):.1f}x |")
    full_8b = total_params(QWEN3_8B)
    lora_8b = all_linear_adapter_params(QWEN3_8B, args.rank)
    print(f"\nQwen3-8B ({full_8b / 1e9:.2f} B parameters), LoRA r={args.rank} all-linear ({lora_8b / 1e6:.1f} M "
          "adapter parameters), fp32 teacher state, summed over the ranks that shard it:")
    print("| | full EMA | LoRA EMA | full / LoRA |\n|---|---|---|---|")
    print(f"| teacher state (pinned host) and teacher/ per checkpoint | {full_8b * 4 / 1e9:.1f} GB | "
          f"{lora_8b * 4 / 1e9:.2f} GB | {full_8b / lora_8b:.0f}x |")
    ns_full = full["ema_cpu_s_median"] / full["state_params"] * 1e9
    ns_lora = lora["ema_cpu_s_median"] / lora["state_params"] * 1e9
    print(f"| EMA CPU time per step at this host's measured CPU ns/value ({ns_full:.2f} / {ns_lora:.2f}) | "
          f"{full_8b * ns_full / 1e9:.1f} s | {lora_8b * ns_lora / 1e9:.2f} s | "
          f"{full_8b * ns_full / (lora_8b * ns_lora):.0f}x |")


if __name__ == "__main__":
    main()
