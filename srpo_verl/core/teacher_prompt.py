"""Teacher prompts for self-distillation (SRPO_SPEC §1.4 teacher prompt, §5.1 templates, §5.2 construction).

The self-teacher re-scores the student's failed response under a prompt that also shows a correct sibling's answer
(and, when enabled, environment feedback). The templates are the SDPO code's, character for character; SRPO uses them
"without any modification" (Listing 5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

REPROMPT_TEMPLATE = "{prompt}{solution}{feedback}\n\nCorrectly solve the original question."
SOLUTION_TEMPLATE = "\nCorrect solution:\n\n{successful_previous_attempt}"
FEEDBACK_TEMPLATE = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback_raw}"

TRUNCATION_MODES = ("demo", "right", "error")

# A thinking block and the whitespace right after it: the only text the SDPO code removes from a demonstration.
_THINK_BLOCK = re.compile(r"<think>.*?</think>\s*", flags=re.DOTALL)


@dataclass(frozen=True)
class TeacherTemplates:
    """The three templates (Python ``str.format`` fields as named); values substituted in keep their braces."""

    reprompt: str = REPROMPT_TEMPLATE
    solution: str = SOLUTION_TEMPLATE
    feedback: str = FEEDBACK_TEMPLATE

    def __post_init__(self):
        for name, template, fields in (
            ("reprompt_template", self.reprompt, ("{prompt}", "{solution}", "{feedback}")),
            ("solution_template", self.solution, ("{successful_previous_attempt}",)),
            ("feedback_template", self.feedback, ("{feedback_raw}",)),
        ):
            missing = [f for f in fields if f not in template]
            if missing:
                raise ValueError(f"srpo.{name} must contain {', '.join(missing)}; got {template!r}")


def strip_thinking(text: str) -> str:
    """Remove every ``<think>…</think>`` block together with the whitespace that follows it, and nothing else.

    This is the SDPO code's demonstration text character for character (lasgroup/SDPO ``_remove_thinking_trace``):
    whitespace before a block or at either end of the text is kept, and a dangling ``…</think>`` without its
    opening tag (a response whose ``<think>`` was in the prompt) is left as it is.
    """
    return _THINK_BLOCK.sub("", text)


def demonstration_texts(
    response_texts: Sequence[str] | Mapping[int, str], demo_index: Sequence[int], remove_thinking: bool = True
) -> list[str | None]:
    """The demonstration for each sample: the decoded response of its ``demo_index`` sibling, or None (index −1).

    Args:
        response_texts: B decoded responses (special tokens skipped), in the same order as the routing, or a
            mapping from batch index to text holding at least the indices in ``demo_index``.
        demo_index: B indices from :func:`srpo_verl.core.route_samples` (a tensor or a list).
        remove_thinking: strip ``<think>`` blocks (the SDPO default ``remove_thinking_from_demonstration``).
    """
    demos: list[str | None] = []
    for index in (int(i) for i in demo_index):
        if index < 0:
            demos.append(None)
        else:
            text = response_texts[index]
            demos.append(strip_thinking(text) if remove_thinking else text)
    return demos


def select_teacher_context(
    solution: str | None,
    feedback: str | None,
    include_feedback: bool = False,
    feedback_only_without_solution: bool = True,
) -> tuple[str | None, str | None]:
    """Which of (solution, feedback) the teacher sees (SRPO_SPEC §5.1 knobs): feedback only when enabled, non-empty,
    and, by default, only when there is no solution."""
    use_feedback = include_feedback and bool(feedback) and not (feedback_only_without_solution and solution)
    return solution, (feedback if use_feedback else None)


def build_teacher_messages(
    prompt_messages: Sequence[dict[str, Any]],
    solution: str | None = None,
    feedback: str | None = None,
    templates: TeacherTemplates = TeacherTemplates(),
) -> list[dict[str, Any]]:
    """Teacher chat messages: the system messages kept, then one user message built from the templates (§5.2).

    Args:
        prompt_messages: the student's chat prompt; its last ``user`` message is the question.
        solution: the demonstration text (already think-stripped) or None.
        feedback: environment feedback text or None.

    Returns:
        New message list; with neither solution nor feedback, the question is used unchanged.
    """
    users = [i for i, m in enumerate(prompt_messages) if m.get("role") == "user"]
    if not users:
        raise ValueError("the prompt has no user message to build a teacher prompt from")
    question = prompt_messages[users[-1]]["content"]
    if not isinstance(question, str):
        raise ValueError(f"teacher prompts need a text user message, got {type(question).__name__}")
    system = [dict(m) for m in prompt_messages if m.get("role") == "system"]
    if solution is None and feedback is None:
        content = question
    else:
        content = templates.reprompt.format(
            prompt=question,
            solution=templates.solution.format(successful_previous_attempt=solution) if solution is not None else "",
            feedback=templates.feedback.format(feedback_raw=feedback) if feedback is not None else "",
        )
    return system + [{"role": "user", "content": content}]


@dataclass(frozen=True)
class TeacherPrompt:
    """A tokenised teacher prompt: ``input_ids`` (ends with the assistant generation header) and whether any text
    had to be cut to fit ``max_reprompt_len``."""

    input_ids: list[int]
    truncated: bool


def _encode(tokenizer, messages, chat_template_kwargs) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **chat_template_kwargs)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_teacher_prompt(
    tokenizer,
    prompt_messages: Sequence[dict[str, Any]],
    solution: str | None = None,
    feedback: str | None = None,
    max_length: int = 10240,
    truncation: str = "demo",
    templates: TeacherTemplates = TeacherTemplates(),
    chat_template_kwargs: dict[str, Any] | None = None,
) -> TeacherPrompt:
    """Build and tokenise the teacher prompt with the chat template, fitting it into ``max_length`` tokens.

    Truncation modes (``srpo.reprompt_truncation``):
        ``demo`` (default): shorten the demonstration, then the feedback, then the *start* of the question, keeping
            the question's end, the closing instruction and the assistant generation header intact.
        ``right``: cut the token sequence at ``max_length`` (the SDPO code's behaviour; it can cut the trailer).
        ``error``: raise ``ValueError``.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        chat_template_kwargs: passed to ``apply_chat_template`` (e.g. ``{"enable_thinking": False}``).

    Returns:
        :class:`TeacherPrompt`.
    """
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"srpo.reprompt_truncation={truncation!r} is not one of {TRUNCATION_MODES}")
    if max_length < 1:
        raise ValueError(f"srpo.max_reprompt_len must be ≥ 1, got {max_length}")
    kwargs = dict(chat_template_kwargs or {})
    messages = build_teacher_messages(prompt_messages, solution, feedback, templates)
    ids = _encode(tokenizer, messages, kwargs)
    if len(ids) <= max_length:
        return TeacherPrompt(ids, truncated=False)
    if truncation == "error":
        raise ValueError(
            f"teacher prompt has {len(ids)} tokens, more than srpo.max_reprompt_len={max_length} "
            "(set srpo.reprompt_truncation=demo or right to truncate)"
        )
    if truncation == "right":
        return TeacherPrompt(ids[:max_length], truncated=True)

    users = [i for i, m in enumerate(prompt_messages) if m.get("role") == "user"]
    pieces = {"solution": solution, "feedback": feedback, "question": prompt_messages[users[-1]]["content"]}

    def render(current: dict[str, str | None]) -> list[int]:
        question_messages = [dict(m) for m in prompt_messages]
        question_messages[users[-1]]["content"] = current["question"]
        return _encode(tokenizer, build_teacher_messages(question_messages, current["solution"],
                                                         current["feedback"], templates), kwargs)

    for name in ("solution", "feedback", "question"):
        text = pieces[name]
        if not text:
            continue
        piece_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        keep = len(piece_ids) - (len(ids) - max_length)
        while True:
            keep = max(keep, 0)
            kept = piece_ids[:keep] if name != "question" else piece_ids[len(piece_ids) - keep:]
            pieces[name] = tokenizer.decode(kept) if keep else ""
            ids = render(pieces)
            if len(ids) <= max_length or keep == 0:
                break
            keep -= len(ids) - max_length  # re-tokenisation at the cut can differ by a few tokens
        if len(ids) <= max_length:
            return TeacherPrompt(ids, truncated=True)
    raise ValueError(
        f"teacher prompt does not fit srpo.max_reprompt_len={max_length} even with an empty demonstration, "
        f"feedback and question ({len(ids)} tokens of system prompt and template)"
    )
