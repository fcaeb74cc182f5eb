"""Byte-level BPE tokenizer for the tiny Qwen3 model, trained at build time (no download).

The tokenizer is built with exactly the pipeline that transformers 5 rebuilds when it loads any tokenizer sitting
next to a ``model_type=qwen3`` config (``Qwen2Tokenizer``: NFC normaliser, Qwen's pre-tokenising regex, then a
byte-level pre-tokenizer without prefix space, byte-level decoder). Training and loading therefore tokenise
identically, and ``"\\n"`` is one token (verl's ``QwenContinuousTokenBuilder`` asserts that).

Special tokens follow Qwen3: ``<|endoftext|>`` (pad), ``<|im_start|>``, ``<|im_end|>`` (eos). ``<think>``,
``</think>``, ``<answer>`` and ``</answer>`` are added as ordinary (non-special) tokens, so they survive
``skip_special_tokens=True`` decoding and each costs one generation step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)
# Non-special added tokens: single ids that decode back to their text.
ADDED_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")

# Qwen2/Qwen3's pre-tokenising regex (the one transformers' Qwen2Tokenizer installs on load): digits are split one
# by one, letters grouped with one leading non-letter, newlines kept apart from other whitespace.
QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# ChatML with Qwen3's thinking switch. Like Qwen3's own template: a leading system message is rendered first, every
# message is `<|im_start|>{role}\n{content}<|im_end|>\n`, and the generation prompt is `<|im_start|>assistant\n`
# followed, only when the caller passes enable_thinking=False, by an empty `<think>\n\n</think>\n\n` block (the
# default, as in Qwen3, is thinking on: no block). Assistant turns in the history drop any `<think>...</think>`
# prefix, as Qwen3 does for turns before the last user query.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- set content = message['content'] if message['content'] is string else '' %}"
    "{%- if message['role'] == 'assistant' and '</think>' in content %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


def _qwen_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def train_bpe(corpus: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE on ``corpus`` (deterministic for a given corpus order).

    The 256-symbol byte alphabet is always included, so any text round-trips. ``vocab_size`` counts the bytes,
    the merges and the special tokens; the added tokens come on top.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = _qwen_pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def to_hf_tokenizer(bpe: Tokenizer):
    """Wrap a trained BPE as transformers' ``Qwen2Tokenizer`` (the class that Qwen3 checkpoints load as).

    Returns a tokenizer with eos ``<|im_end|>``, pad ``<|endoftext|>``, no bos, the ChatML template above and the
    added tokens, ready for ``save_pretrained``.
    """
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    model_json = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    hf_tokenizer = Qwen2Tokenizer(
        vocab=model_json["vocab"],
        merges=merges,
        unk_token=None,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        bos_token=None,
        additional_special_tokens=[IM_START, IM_END],
    )
    hf_tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    hf_tokenizer.chat_template = CHAT_TEMPLATE
    hf_tokenizer.model_max_length = 512
    return hf_tokenizer
