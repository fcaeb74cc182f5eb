"""The tiny model's byte-level BPE tokenizer and Qwen3-style ChatML template (srpo_verl.tiny.tokenizer)."""

import pytest

from srpo_verl.tiny import task
from srpo_verl.tiny.build import tokenizer_corpus
from srpo_verl.tiny.tokenizer import ADDED_TOKENS, IM_END, IM_START, PAD_TOKEN, to_hf_tokenizer, train_bpe

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Largest digit: 1 2 3 4"}]


@pytest.fixture(scope="module")
def bpe():
    train, _ = task.make_splits(seed=0, num_train=200, num_test=4)
    return train_bpe(tokenizer_corpus(train), vocab_size=320)


@pytest.fixture(scope="module")
def saved_and_loaded(bpe, tmp_path_factory):
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tok")
    to_hf_tokenizer(bpe).save_pretrained(path)
    # A qwen3 config next to the tokenizer is what makes transformers 5 pick Qwen2Tokenizer (CPU notes §4.1).
    (path / "config.json").write_text('{"model_type": "qwen3"}')
    return to_hf_tokenizer(bpe), AutoTokenizer.from_pretrained(path)


def test_newline_and_special_tokens_are_single_ids(saved_and_loaded):
    _, tok = saved_and_loaded
    assert len(tok.encode("\n", add_special_tokens=False)) == 1  # verl's QwenContinuousTokenBuilder asserts this
    for token in (PAD_TOKEN, IM_START, IM_END, *ADDED_TOKENS):
        assert len(tok.encode(token, add_special_tokens=False)) == 1, token
    assert tok.eos_token == IM_END and tok.pad_token == PAD_TOKEN and tok.bos_token is None
    assert tok.eos_token_id != tok.pad_token_id


def test_loaded_tokenizer_is_qwen2_class_and_tokenises_like_the_trained_bpe(bpe, saved_and_loaded):
    _, tok = saved_and_loaded
    assert type(tok).__name__ == "Qwen2Tokenizer"
    text = "Largest digit: 7 2 9 4\n\nanswer thé  naïve ☃ 12345"  # no added tokens: the raw BPE lacks them
    assert tok.encode(text, add_special_tokens=False) == bpe.encode(text).ids
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_digits_are_split_one_by_one(saved_and_loaded):
    _, tok = saved_and_loaded
    assert tok.convert_ids_to_tokens(tok.encode("1234", add_special_tokens=False)) == ["1", "2", "3", "4"]


def test_decode_skips_special_but_keeps_answer_tags(saved_and_loaded):
    _, tok = saved_and_loaded
    ids = tok.encode("<answer>7</answer><|im_end|>", add_special_tokens=False)
    assert len(ids) == 4
    assert tok.decode(ids, skip_special_tokens=True) == "<answer>7</answer>"


def test_chat_template_thinking_off_appends_empty_think_block(saved_and_loaded):
    _, tok = saved_and_loaded
    text = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, enable_thinking=False, tokenize=False)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nLargest digit: 1 2 3 4<|im_end|>\n"
                    "<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize("kwargs", [{}, {"enable_thinking": True}])
def test_chat_template_thinking_on_by_default_like_qwen3(saved_and_loaded, kwargs):
    _, tok = saved_and_loaded
    text = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False, **kwargs)
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "<think>" not in text


def test_chat_template_without_generation_prompt_and_with_history(saved_and_loaded):
    _, tok = saved_and_loaded
    history = MESSAGES + [{"role": "assistant", "content": "<think>\nhmm\n</think>\n\n<answer>4</answer>"}]
    text = tok.apply_chat_template(history, add_generation_prompt=False, tokenize=False)
    # Qwen3 drops the reasoning of earlier assistant turns.
    assert text.endswith("<|im_start|>assistant\n<answer>4</answer><|im_end|>\n")


def test_training_is_deterministic(bpe):
    train, _ = task.make_splits(seed=0, num_train=200, num_test=4)
    again = train_bpe(tokenizer_corpus(train), vocab_size=320)
    assert again.to_str() == bpe.to_str()
