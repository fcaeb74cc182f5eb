"""The tiny-asset builder: task, warm-start pieces, determinism and the saved files (srpo_verl.tiny)."""

import hashlib
import json
import random

import pandas as pd
import pytest
import torch

from srpo_verl.tiny import task
from srpo_verl.tiny.build import BuildSettings, build_tiny_assets, cached_assets
from srpo_verl.tiny.model import TinyQwen3Shape
from srpo_verl.tiny.warmstart import EncodedExample, collate_right_padded, sample_responses

SMALL_SHAPE = TinyQwen3Shape(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                             num_key_value_heads=1, head_dim=16)
SMALL = BuildSettings(warmstart_steps=3, num_train=64, num_test=8, vocab_size=320, shape=SMALL_SHAPE,
                      eval_samples_per_prompt=2)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def two_builds_seed0(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    first = build_tiny_assets(root / "a", seed=0, settings=SMALL, log=lambda _: None)
    second = build_tiny_assets(root / "b", seed=0, settings=SMALL, log=lambda _: None)
    return first, second


# ---- task ----

def test_problem_answer_is_the_largest_digit():
    problem = task.make_problem(random.Random(3))
    digits = [int(d) for d in problem.question.removeprefix(task.QUESTION_PREFIX).split()]
    assert len(digits) == task.NUM_DIGITS and problem.answer == str(max(digits))


def test_splits_are_deterministic_and_disjoint():
    train, test = task.make_splits(seed=5, num_train=300, num_test=50)
    assert (train, test) == task.make_splits(seed=5, num_train=300, num_test=50)
    assert train != task.make_splits(seed=6, num_train=300, num_test=50)[0]
    assert not {p.question for p in train} & {p.question for p in test}
    assert len({p.question for p in test}) == 50


def test_reference_response_passes_the_project_verifier_and_others_fail():
    problem = task.Problem("Largest digit: 1 7 3 0", "7")
    assert task.reference_response(problem) == "<answer>7</answer>"
    assert task.is_correct(task.reference_response(problem), problem.answer)
    assert not task.is_correct("<answer>3</answer>", "7")
    assert not task.is_correct("7", "7")  # no answer block
    assert task.is_correct("<answer>1</answer> then <answer> 7 </answer>", "7")  # the last block counts, stripped


# ---- warm-start pieces ----

def test_collate_masks_prompt_and_padding():
    examples = [EncodedExample((5, 6, 7), (8, 2)), EncodedExample((5,), (9, 9, 2))]
    input_ids, labels = collate_right_padded(examples, pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7, 8, 2], [5, 9, 9, 2, 0]]
    assert labels.tolist() == [[-100, -100, -100, 8, 2], [-100, 9, 9, 2, -100]]


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
    digits = [int(d) for d in row["prompt"][1]["content"].removeprefix(task.QUESTION_PREFIX).split()]
    assert row["reward_model"] == {"style": "rule", "ground_truth": str(max(digits))}
    assert row["extra_info"]["split"] == "test" and row["extra_info"]["index"] == 3


def test_cache_hit_needs_same_version_and_settings(two_builds_seed0):
    assets = two_builds_seed0[0]
    settings = BuildSettings(**{**SMALL.__dict__, "seed": 0})
    assert cached_assets(assets.root, settings) is not None
    assert cached_assets(assets.root, BuildSettings(**{**SMALL.__dict__, "seed": 1})) is None
    manifest = json.loads((assets.root / "manifest.json").read_text())
    assert manifest["settings"]["builder_version"] >= 1
