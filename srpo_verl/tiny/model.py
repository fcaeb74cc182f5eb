"""The tiny Qwen3 policy: a ``Qwen3ForCausalLM`` small enough to train with RL on 2 CPU cores.

Same architecture family as the paper's Qwen3-4B/8B (RMSNorm, q/k-norm, GQA, SwiGLU, RoPE, tied embeddings), only
with a few layers and hidden size ~128. Weights are fp32 and a pure function of the seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class TinyQwen3Shape:
    """Size knobs of the tiny model (defaults: 4 layers, hidden 128, ~0.6M parameters with a ~400-token vocab)."""

    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    max_position_embeddings: int = 256

    def to_dict(self) -> dict:
        return asdict(self)


def tiny_qwen3_config(shape: TinyQwen3Shape, vocab_size: int, eos_token_id: int, pad_token_id: int):
    """Build the ``Qwen3Config`` (fp32, eager attention, tied embeddings) for ``shape`` and the given vocab."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=shape.max_position_embeddings,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        use_cache=True,
        bos_token_id=None,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        torch_dtype="float32",
        attn_implementation="eager",
    )


def init_tiny_qwen3(config, seed: int) -> torch.nn.Module:
    """A freshly initialised ``Qwen3ForCausalLM`` whose weights depend only on ``seed`` (and ``config``)."""
    from transformers import Qwen3ForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    return model.float()
