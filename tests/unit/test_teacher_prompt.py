"""Teacher prompts: SDPO templates exactly, think-stripping, feedback gating and truncation (SRPO_SPEC §5.1, §5.2)."""

import pytest

from srpo_verl.core import (
    TeacherTemplates,
    build_teacher_messages,
    demonstration_texts,
    select_teacher_context,
    strip_thinking,
    tokenize_teacher_prompt,
)

PROMPT = [{"role": "system", "content": "\nAnswer with a letter.\n"}, {"role": "user", "content": "What is 2+2?"}]
TRAILER = "\n\nCorrectly solve the original question."


class CharTokenizer:
    """One token per character (ids = code points), ChatML template: token counts can be worked by hand."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, enable_thinking=True):
        assert tokenize is False
        text = "".join(f"<{m['role']}>{m['content']}</>" for m in messages)
        if add_generation_prompt:
            text += "<assistant>" + ("" if enable_thinking else "<think></think>")
        return text

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def decode(ids):
    return CharTokenizer().decode(ids)


def test_sdpo_templates_character_for_character():
    messages = build_teacher_messages(PROMPT, solution="<answer>4</answer>")
    assert messages[0] == PROMPT[0]
    assert messages[1] == {"role": "user",
                           "content": "What is 2+2?\nCorrect solution:\n\n<answer>4</answer>" + TRAILER}
    feedback_only = build_teacher_messages(PROMPT, feedback="wrong letter")
    assert feedback_only[1]["content"] == (
        "What is 2+2?\nThe following is feedback from your unsuccessful earlier attempt:\n\nwrong letter" + TRAILER)
    both = build_teacher_messages(PROMPT, solution="S", feedback="F")[1]["content"]
    assert both == ("What is 2+2?\nCorrect solution:\n\nS\nThe following is feedback from your unsuccessful "
                    "earlier attempt:\n\nF" + TRAILER)


def test_no_teacher_information_keeps_the_prompt_and_only_the_last_user_turn_is_used():
    assert build_teacher_messages(PROMPT) == PROMPT
    multi = PROMPT + [{"role": "assistant", "content": "5"}, {"role": "user", "content": "Again: 2+2?"}]
    out = build_teacher_messages(multi, solution="4")
    assert [m["role"] for m in out] == ["system", "user"]
    assert out[1]["content"].startswith("Again: 2+2?\nCorrect solution:")


def test_curly_braces_in_question_demo_and_feedback_survive():
    prompt = [{"role": "user", "content": "f(x) = {x}^2 {0}"}]
    content = build_teacher_messages(prompt, solution="{answer} {{B}}", feedback="{}")[-1]["content"]
    assert content.startswith("f(x) = {x}^2 {0}\nCorrect solution:\n\n{answer} {{B}}")
    assert "attempt:\n\n{}" + TRAILER in content


def test_strip_thinking_is_the_sdpo_codes_text_character_for_character():
    # lasgroup/SDPO removes `<think>...</think>\s*` (DOTALL, non-greedy) and touches nothing else
    assert strip_thinking("<think>long\nthoughts</think>\n<answer>B</answer>") == "<answer>B</answer>"
    assert strip_thinking("a<think>x</think>b<think>y</think>c") == "abc"
    assert strip_thinking("no tags") == "no tags"
    # whitespace after a block goes with it (spaces, tabs, several newlines); before it and at the ends it stays
    assert strip_thinking("<think>t</think> \t\n\n  answer") == "answer"
    assert strip_thinking("  lead <think>t</think>\nend\n") == "  lead end\n"
    assert strip_thinking("\nanswer\n\n") == "\nanswer\n\n"
    # a dangling `...</think>` (its opening tag was in the prompt) is kept as it is, not cut
    assert strip_thinking("half a thought</think> final") == "half a thought</think> final"
    assert strip_thinking("half</think>\n<think>b</think>\nfinal") == "half</think>\nfinal"
    # non-greedy: an unclosed <think> stays; a nested-looking block ends at the first </think>
    assert strip_thinking("<think>open without close") == "<think>open without close"
    assert strip_thinking("<think>a<think>b</think>c</think>d") == "c</think>d"


def test_demonstration_texts_follow_demo_index():
    texts = ["<think>t</think>A", "B", "C"]
    assert demonstration_texts(texts, [2, -1, 0]) == ["C", None, "A"]
    assert demonstration_texts(texts, [0], remove_thinking=False) == ["<think>t</think>A"]


def test_feedback_only_when_enabled_and_by_default_only_without_solution():
    assert select_teacher_context("S", "F") == ("S", None)
    assert select_teacher_context("S", "F", include_feedback=True) == ("S", None)
    assert select_teacher_context(None, "F", include_feedback=True) == (None, "F")
    assert select_teacher_context("S", "F", include_feedback=True, feedback_only_without_solution=False) == ("S", "F")
    assert select_teacher_context(None, "", include_feedback=True) == (None, None)


def test_templates_are_validated():
    with pytest.raises(ValueError, match="solution_template must contain {successful_previous_attempt}"):
        TeacherTemplates(solution="\nCorrect: {demo}")


def test_fits_without_truncation_and_passes_enable_thinking():
    tok = CharTokenizer()
    out = tokenize_teacher_prompt(tok, PROMPT, solution="4", chat_template_kwargs={"enable_thinking": False})
    assert not out.truncated
    assert decode(out.input_ids).endswith(TRAILER + "</><assistant><think></think>")
    thinking = tokenize_teacher_prompt(tok, PROMPT, solution="4", chat_template_kwargs={"enable_thinking": True})
    assert decode(thinking.input_ids).endswith("</><assistant>")


def test_demo_truncation_keeps_question_trailer_and_header():
    tok = CharTokenizer()
    full = tokenize_teacher_prompt(tok, PROMPT, solution="0123456789" * 10)
    limit = len(full.input_ids) - 25
    out = tokenize_teacher_prompt(tok, PROMPT, solution="0123456789" * 10, max_length=limit)
    assert out.truncated and len(out.input_ids) == limit
    text = decode(out.input_ids)
    assert "What is 2+2?\nCorrect solution:\n\n" + ("0123456789" * 10)[:75] + TRAILER in text
    assert text.endswith("</><assistant>")


def test_demo_truncation_then_feedback_then_question_start():
    tok = CharTokenizer()
    empty = tokenize_teacher_prompt(tok, [PROMPT[0], {"role": "user", "content": ""}], solution="", feedback="")
    fixed = len(empty.input_ids)  # system + templates + header with every piece empty
    out = tokenize_teacher_prompt(tok, PROMPT, solution="S" * 50, feedback="F" * 50, max_length=fixed + 8)
    text = decode(out.input_ids)
    assert out.truncated and len(out.input_ids) == fixed + 8
    assert "S" not in text and "F" not in text.replace("Correctly", "").replace("following", "")
    assert "<user> is 2+2?\nCorrect solution:\n\n\nThe following" in text  # the question's end is kept
    assert text.endswith(TRAILER + "</><assistant>")


def test_right_truncation_is_sdpo_behaviour_and_error_mode_raises():
    tok = CharTokenizer()
    full = tokenize_teacher_prompt(tok, PROMPT, solution="x" * 40).input_ids
    right = tokenize_teacher_prompt(tok, PROMPT, solution="x" * 40, max_length=30, truncation="right")
    assert right.truncated and right.input_ids == full[:30]
    with pytest.raises(ValueError, match="max_reprompt_len=30"):
        tokenize_teacher_prompt(tok, PROMPT, solution="x" * 40, max_length=30, truncation="error")
    with pytest.raises(ValueError, match="reprompt_truncation='left'"):
        tokenize_teacher_prompt(tok, PROMPT, solution="x", truncation="left")


def test_unfittable_fixed_part_raises_with_the_key():
    with pytest.raises(ValueError, match="does not fit srpo.max_reprompt_len=10"):
        tokenize_teacher_prompt(CharTokenizer(), PROMPT, solution="x", max_length=10)


def test_real_hf_tokenizer_with_chat_template():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|im_start|>", "<|im_end|>"])
    raw.train_from_iterator(["What is 2+2? Correct solution: the answer is 4. Correctly solve the original question."],
                            trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>")
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n"
        "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
    )
    out = tokenize_teacher_prompt(tok, PROMPT, solution="{4}", chat_template_kwargs={"enable_thinking": False})
    text = tok.decode(out.input_ids)
    assert text.endswith("Correct solution:\n\n{4}" + TRAILER + "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    short = tokenize_teacher_prompt(tok, PROMPT, solution="the answer is 4 " * 20, max_length=len(out.input_ids) + 5)
    assert short.truncated and len(short.input_ids) <= len(out.input_ids) + 5
    assert tok.decode(short.input_ids).endswith(TRAILER + "<|im_end|>\n<|im_start|>assistant\n")
