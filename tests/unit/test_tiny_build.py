"""The tiny-asset builder: task, warm-start pieces, determinism and the saved files (srpo_verl.tiny)."""

import hashlib
import json
import math

import pandas as pd
import pytest
import torch

from srpo_verl.tiny import task
from srpo_verl.tiny.build import (BuildSettings, build_tiny_assets, cached_assets, check_accuracy,
                                  check_teacher_accuracy)
from srpo_verl.tiny.model import TinyQwen3Shape
from srpo_verl.tiny.warmstart import (EncodedExample, collate_soft_targets, draw_response, sample_responses,
                                      soft_target_loss, target_entropy, warmup_cosine)

SMALL_SHAPE = TinyQwen3Shape(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                             num_key_value_heads=1, head_dim=16)
SMALL = BuildSettings(warmstart_steps=3, num_train=64, num_test=8, vocab_size=320, shape=SMALL_SHAPE,
                      eval_samples_per_prompt=2, expected_accuracy=None, min_teacher_accuracy=None)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def two_builds_seed0(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    first = build_tiny_assets(root / "a", seed=0, settings=SMALL, log=lambda _: None)
    second = build_tiny_assets(root / "b", seed=0, settings=SMALL, log=lambda _: None)
    return first, second


# ---- task ----

def test_problem_answer_is_the_digits_sorted():
    assert task.problem_of("729") == task.Problem("Sort: 729", "279")
    train, _ = task.make_splits(seed=3, num_train=20, num_test=5)
    for problem in train:
        digits = problem.question.removeprefix(task.QUESTION_PREFIX).strip()
        assert len(digits) == task.NUM_DIGITS and problem.answer == "".join(sorted(digits))


def test_splits_are_deterministic_and_disjoint():
    train, test = task.make_splits(seed=5, num_train=300, num_test=50)
    assert (train, test) == task.make_splits(seed=5, num_train=300, num_test=50)
    assert train != task.make_splits(seed=6, num_train=300, num_test=50)[0]
    assert not {p.question for p in train} & {p.question for p in test}
    assert len({p.question for p in test}) == 50 and len({p.question for p in train}) == 300


def test_splits_refuse_more_problems_than_digit_strings():
    with pytest.raises(ValueError, match="num_train \\+ num_test <= 1000"):
        task.make_splits(seed=0, num_train=900, num_test=101)


def test_noisy_target_digit_accuracy_and_near_misses():
    assert task.digit_accuracy(0.3) ** task.NUM_DIGITS == pytest.approx(0.3)
    assert task.digit_accuracy(1.0) == 1.0
    assert task.near_misses("0") == ("1",) and task.near_misses("9") == ("8",) and task.near_misses("4") == ("3", "5")
    with pytest.raises(ValueError, match="answer_accuracy"):
        task.digit_accuracy(0.0)


def test_reference_response_passes_the_project_verifier_and_others_fail():
    problem = task.problem_of("310")
    assert task.reference_response(problem) == "<answer>013</answer>"
    assert task.is_correct(task.reference_response(problem), problem.answer)
    assert not task.is_correct("<answer>023</answer>", "013")  # one digit off
    assert not task.is_correct("013", "013")  # no answer block
    assert task.is_correct("<answer>1</answer> then <answer> 013 </answer>", "013")  # the last block counts, stripped


# ---- warm-start pieces ----

def test_collate_soft_targets_masks_prompt_and_padding():
    examples = [EncodedExample((5, 6, 7), (8, 2)), EncodedExample((5,), (9, 9, 2))]
    input_ids, targets = collate_soft_targets(examples, pad_id=0, vocab_size=10, generator=torch.Generator())
    assert input_ids.tolist() == [[5, 6, 7, 8, 2], [5, 9, 9, 2, 0]]
    # targets[b, t] is the distribution of token t + 1: one-hot on response tokens, zero elsewhere
    assert targets.argmax(-1)[0, 2:4].tolist() == [8, 2] and targets[0, :2].sum() == 0 and targets[0, 4].sum() == 0
    assert targets.argmax(-1)[1, 0:3].tolist() == [9, 9, 2] and targets[1, 3:].sum() == 0


def test_noisy_targets_are_drawn_at_their_rate_and_trained_towards_as_distributions():
    example = EncodedExample((1,), (4, 2), targets=(((4, 0.25), (3, 0.75)), None))
    generator = torch.Generator().manual_seed(0)
    drawn = [draw_response(example, generator)[0] for _ in range(4000)]
    assert abs(drawn.count(4) / 4000 - 0.25) < 0.03 and set(drawn) == {3, 4}
    input_ids, targets = collate_soft_targets([example], pad_id=0, vocab_size=6, generator=generator)
    assert targets[0, 0].tolist() == [0, 0, 0, 0.75, 0.25, 0] and targets[0, 1, 2] == 1.0
    # the entropy of the targets is the loss a model that matches them exactly reaches
    floor = target_entropy([example])
    assert floor == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / 2)

    class Exact(torch.nn.Module):
        def forward(self, input_ids):
            return type("Out", (), {"logits": torch.log(targets.clamp_min(1e-12))})()

    assert soft_target_loss(Exact(), input_ids, targets).item() == pytest.approx(floor, abs=1e-6)


def test_noisy_targets_must_cover_every_response_token():
    with pytest.raises(ValueError, match="targets has 1 entries for 2 response tokens"):
        EncodedExample((1,), (4, 2), targets=(None,))


def test_warmup_cosine_schedule():
    assert [round(warmup_cosine(s, 10, 2), 3) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]


def test_accuracy_check_tolerance():
    settings = BuildSettings(expected_accuracy=0.3, accuracy_tolerance=0.05)
    assert check_accuracy(settings, 0.34) == {"expected": 0.3, "tolerance": 0.05, "ok": True}
    assert not check_accuracy(settings, 0.36)["ok"] and not check_accuracy(settings, 0.24)["ok"]
    assert check_accuracy(SMALL, 0.0)["ok"]


def test_teacher_accuracy_check():
    settings = BuildSettings(min_teacher_accuracy=0.9)
    assert check_teacher_accuracy(settings, 0.9) == {"min": 0.9, "ok": True}
    assert not check_teacher_accuracy(settings, 0.899)["ok"]
    assert check_teacher_accuracy(SMALL, 0.0) == {"min": None, "ok": True}


class CountingModel(torch.nn.Module):
    """Puts all probability on (last token + 1) mod vocab: sampling is deterministic and easy to predict."""

    vocab = 10

    def forward(self, input_ids):
        logits = torch.full((*input_ids.shape, self.vocab), -1e9)
        logits.scatter_(-1, ((input_ids + 1) % self.vocab)[..., None], 0.0)
        return type("Out", (), {"logits": logits})()


def test_sample_responses_stops_after_eos_and_keeps_prompt_order():
    prompts = [[1, 2], [6], [3, 4], [8]]  # two lengths: batched per length, returned in this order
    out = sample_responses(CountingModel(), prompts, max_new_tokens=4, eos_id=9,
                           generator=torch.Generator().manual_seed(0))
    assert out == [[3, 4, 5, 6], [7, 8, 9], [5, 6, 7, 8], [9]]


def test_sample_responses_rejects_zero_temperature():
    with pytest.raises(ValueError, match="temperature"):
        sample_responses(CountingModel(), [[1]], max_new_tokens=1, eos_id=9, generator=torch.Generator(),
                         temperature=0.0)


# ---- built files ----

def test_same_seed_gives_identical_files(two_builds_seed0):
    first, second = two_builds_seed0
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert sha256(first.model_dir / name) == sha256(second.model_dir / name), name
    assert sha256(first.train_parquet) == sha256(second.train_parquet)
    assert first.manifest["sampled_accuracy"] == second.manifest["sampled_accuracy"]


def test_other_seed_gives_other_weights(two_builds_seed0, tmp_path):
    other = build_tiny_assets(tmp_path, seed=1, settings=SMALL, log=lambda _: None)
    assert sha256(other.model_dir / "model.safetensors") != sha256(two_builds_seed0[0].model_dir / "model.safetensors")


def test_saved_model_loads_as_fp32_qwen3_with_chatml_eos(two_builds_seed0):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assets = two_builds_seed0[0]
    model = AutoModelForCausalLM.from_pretrained(assets.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(assets.model_dir)
    assert type(model).__name__ == "Qwen3ForCausalLM" and model.dtype == torch.float32
    assert model.config.num_hidden_layers == 1 and model.config.hidden_size == 32
    assert model.config.vocab_size == len(tokenizer) == assets.manifest["vocab_size"]
    assert model.config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>") == tokenizer.eos_token_id
    assert model.config.tie_word_embeddings


def test_parquet_has_verl_schema(two_builds_seed0):
    assets = two_builds_seed0[0]
    train, test = pd.read_parquet(assets.train_parquet), pd.read_parquet(assets.test_parquet)
    assert list(train.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert (len(train), len(test)) == (64, 8)
    row = test.iloc[3]
    assert row["data_source"] == "synthetic"
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][0]["content"] == task.SYSTEM_PROMPT
    digits = row["prompt"][1]["content"].removeprefix(task.QUESTION_PREFIX).strip()
    assert row["reward_model"] == {"style": "rule", "ground_truth": "".join(sorted(digits))}
    assert row["extra_info"]["split"] == "test" and row["extra_info"]["index"] == 3


def test_cache_hit_needs_same_version_and_settings(two_builds_seed0):
    assets = two_builds_seed0[0]
    settings = BuildSettings(**{**SMALL.__dict__, "seed": 0})
    assert cached_assets(assets.root, settings) is not None
    assert cached_assets(assets.root, BuildSettings(**{**SMALL.__dict__, "seed": 1})) is None
    manifest = json.loads((assets.root / "manifest.json").read_text())
    assert manifest["settings"]["builder_version"] >= 1


def test_noisy_digit_targets_put_the_set_rate_on_the_right_digit(two_builds_seed0):
    from transformers import AutoTokenizer

    from srpo_verl.tiny.build import noisy_digit_targets

    tokenizer = AutoTokenizer.from_pretrained(two_builds_seed0[0].model_dir)
    problem = task.problem_of("930")
    response = tuple(tokenizer.encode(task.reference_response(problem), add_special_tokens=False))
    targets = noisy_digit_targets(tokenizer, problem, response, digit_accuracy=0.7)
    digit = {d: tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    assert targets[0] is None and targets[-1] is None  # <answer> and </answer> stay one-hot
    assert [dict(t) for t in targets[1:4]] == [
        {digit[0]: 0.7, digit[1]: pytest.approx(0.3)},
        {digit[3]: 0.7, digit[2]: pytest.approx(0.15), digit[4]: pytest.approx(0.15)},
        {digit[9]: 0.7, digit[8]: pytest.approx(0.3)},
    ]


def test_manifest_records_the_accuracy_check_and_the_loss_floor(two_builds_seed0):
    manifest = two_builds_seed0[0].manifest
    assert manifest["accuracy_check"] == {"expected": None, "tolerance": None, "ok": True}
    last20, floor = manifest["warmstart_loss_last20_vs_floor"]
    assert 0 < floor < last20


def test_build_fails_when_the_accuracy_is_off_the_expected_value(tmp_path):
    settings = BuildSettings(**{**SMALL.__dict__, "expected_accuracy": 0.9, "accuracy_tolerance": 0.05})
    with pytest.raises(ValueError, match="warm-start sampled accuracy .* is not within 0.05 of the expected 0.9"):
        build_tiny_assets(tmp_path, settings=settings, log=lambda _: None)
    assert json.loads((tmp_path / "manifest.json").read_text())["accuracy_check"]["ok"] is False


def test_build_fails_when_the_teacher_does_not_copy_the_shown_answer(tmp_path):
    settings = BuildSettings(**{**SMALL.__dict__, "min_teacher_accuracy": 0.99})  # 3 warm-start steps copy nothing
    with pytest.raises(ValueError, match=r"the teacher prompt's sampled accuracy 0\.\d+ is below "
                                         r"BuildSettings\.min_teacher_accuracy=0\.99"):
        build_tiny_assets(tmp_path, settings=settings, log=lambda _: None)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["teacher_accuracy_check"] == {"min": 0.99, "ok": False}
    assert manifest["teacher_sampled_accuracy"]["num_prompts"] == SMALL.num_test


# ---- levels ----

def test_quickstart_level_is_the_default_settings_unchanged():
    from srpo_verl.tiny.build import DEFAULT_LEVEL, level_of, level_settings

    assert DEFAULT_LEVEL == "quickstart" and level_settings("quickstart") == BuildSettings()
    # builder v4's quickstart settings, pinned: a level must not move the quickstart's assets
    settings = BuildSettings().to_dict()
    assert {k: settings[k] for k in ("builder_version", "seed", "warmstart_steps", "warmstart_target_accuracy",
                                     "teacher_repeats", "expected_accuracy", "accuracy_tolerance",
                                     "min_teacher_accuracy", "num_train", "num_test")} == {
        "builder_version": 4, "seed": 0, "warmstart_steps": 450, "warmstart_target_accuracy": 0.4,
        "teacher_repeats": 2, "expected_accuracy": 0.38, "accuracy_tolerance": 0.10, "min_teacher_accuracy": 0.9,
        "num_train": 850, "num_test": 150}
    assert level_of(BuildSettings(seed=3)) == "quickstart"
    assert level_of(BuildSettings(warmstart_target_accuracy=0.2)) is None


def test_long_level_keeps_the_start_state_guarantees():
    from srpo_verl.tiny.build import level_of, level_settings

    long = level_settings("long", BuildSettings(seed=4))
    assert long.seed == 4 and level_of(long) == "long"
    digit = task.digit_accuracy(long.warmstart_target_accuracy)
    assert long.warmstart_target_accuracy == 0.03 and digit == pytest.approx(0.311, abs=1e-3)
    # systematic wrong answers: each neighbour of a digit is more likely than the digit itself, so the most likely
    # answer is wrong (the quickstart's digits are right with 0.74, each neighbour 0.13)
    assert (1 - digit) / 2 > digit
    assert task.digit_accuracy(BuildSettings().warmstart_target_accuracy) > 0.7
    # student accuracy set by the data and checked, teacher copy checked at the quickstart's bar
    assert check_accuracy(long, 0.006)["ok"] and check_accuracy(long, 0.074)["ok"]
    assert not check_accuracy(long, 0.004)["ok"] and not check_accuracy(long, 0.076)["ok"]
    assert not check_accuracy(long, 0.38)["ok"]  # a quickstart-level model fails the long level's check
    assert check_teacher_accuracy(long, 0.9)["ok"] and not check_teacher_accuracy(long, 0.89)["ok"]
    # everything else as the quickstart's
    differing = {k for k, v in long.to_dict().items() if BuildSettings(seed=4).to_dict()[k] != v}
    assert differing == {"warmstart_target_accuracy", "expected_accuracy", "accuracy_tolerance"}
    with pytest.raises(ValueError, match="unknown level 'hard'"):
        level_settings("hard")


def test_build_records_the_level_and_the_cli_reuses_by_level(tmp_path, capsys):
    from srpo_verl.tiny.build import level_settings, main

    assets = build_tiny_assets(tmp_path / "small", settings=SMALL, log=lambda _: None)
    assert assets.manifest["level"] is None  # the test's own settings are no level
    # a directory holding the long level's assets of seed 5 is reused by --level long, rebuilt for another level
    root = tmp_path / "long5"
    (root / "model").mkdir(parents=True)
    (root / "data").mkdir()
    for path in (root / "model" / "config.json", root / "data" / "train.parquet", root / "data" / "test.parquet"):
        path.write_text("{}")
    manifest = {"settings": level_settings("long", BuildSettings(seed=5)).to_dict(), "level": "long",
                "sampled_accuracy": {"accuracy": 0.11}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert main(["--out", str(root), "--seed", "5", "--level", "long", "--reuse"]) == 0
    printed = capsys.readouterr().out
    assert "reusing" in printed and "level long" in printed and "11.0%" in printed
    assert cached_assets(root, level_settings("long", BuildSettings(seed=5))) is not None
    assert cached_assets(root, BuildSettings(seed=5)) is None  # the quickstart level would rebuild
