"""`srpo.teacher: ema | live | base` (issue 17 §2).

Equivalence on the same batch, through the worker's real teacher pass (``SRPOWorker.compute_teacher_topk``: the
compact teacher batch → the engine → srpo_verl's logits processor → the response frame) and its real EMA
(``SRPOWorker.ema_update_teacher`` → srpo_verl.core.ema) on a tiny Qwen3:
  * ``live`` (the actor engine scores the teacher batch) equals ``ema`` with rate 1.0 applied after the same actor
    steps, bit for bit (the EMA's lerp at weight 1 returns the actor's values exactly);
  * ``base`` (the teacher engine, never updated) equals ``ema`` with rate 0.0 after the same steps, and the initial
    model; both differ from the trained actor (so the comparisons can fail).
The engine is a stand-in for verl's TrainingWorker around the module (the per-row forward and the processor call
that verl's FSDP engine makes with ``distillation_use_topk``); the trainer parts (EMA skipped, checkpoints, resume)
use the trainer without Ray, and the start-up refusals real Hydra compositions of the shipped configs.
"""

from __future__ import annotations

import copy
import json
import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
import verl.trainer.ppo.v1.trainer_sync  # noqa: F401  (the SRPO trainer module is imported after verl's)
from omegaconf import OmegaConf
from tensordict import TensorDict
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from srpo_verl.preflight import checkpoint as ckpt
from srpo_verl.verl_ext import loss as L
from srpo_verl.preflight.config import validate_run_config
from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings
from srpo_verl.verl_ext.layout import to_jagged
from srpo_verl.verl_ext.trainer import SRPOTrainer
from srpo_verl.verl_ext.worker import SRPOWorker

REPO = Path(__file__).resolve().parents[2]
VOCAB, TOPK = 61, 5


# ---------------------------------------------------------------------------------------------- the worker's pass
def tiny_qwen3(seed: int = 0) -> torch.nn.Module:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                         tie_word_embeddings=False, attn_implementation="eager")
    return Qwen3ForCausalLM(config).float().eval()


class Engine:
    """verl's TrainingWorker around ``module`` as the teacher pass uses it: ``infer_batch`` runs the module on each
    row (prompt + response; under no_grad, as verl's eval mode) and hands the packed logits [1, nnz, V] to the
    engine's loss fn as the logits processor; per-token outputs come back per row, whole sequences."""

    def __init__(self, module: torch.nn.Module, loss_fn):
        self.engine = type("FSDPEngine", (), {"module": module})()
        self.engine_config = type("EngineConfig", (), {"use_dynamic_bsz": False, "infer_micro_batch_size_per_gpu": 8})()
        self.loss_fn, self.calls = loss_fn, 0

    def infer_batch(self, data: TensorDict) -> TensorDict:
        self.calls += 1
        with torch.no_grad():
            logits = torch.cat([self.engine.module(input_ids=row[None]).logits[0] for row in data["input_ids"].unbind()])
        outputs = self.loss_fn(student_logits=logits[None], data=data)
        lengths = data["input_ids"].offsets().diff()
        return TensorDict({key: to_jagged(value[0], lengths) for key, value in outputs.items()},
                          batch_size=data.batch_size)


class Profiler:
    rank = 0

    def check_enable(self):
        return False

    check_this_step = check_this_rank = check_enable


def worker(teacher: str, actor: torch.nn.Module, teacher_module: torch.nn.Module | None) -> SRPOWorker:
    """An SRPOWorker with what its teacher pass and EMA read: the settings, the actor engine and (ema, base) the
    teacher engine, each with the loss fn init_model installs."""
    w = object.__new__(SRPOWorker)
    w.srpo = SRPOSettings(method="srpo", teacher=teacher, topk=TOPK, logits_backend="chunked")
    w.actor = Engine(actor, partial(L.srpo_loss, w.srpo, object()))
    w.teacher = Engine(teacher_module, partial(L.srpo_loss, w.srpo, None)) if teacher_module is not None else None
    w.profiler, w.enable_routing_replay = Profiler(), False
    return w


def teacher_batch(seed: int = 1) -> TensorDict:
    """The compact teacher batch as SRPOTrainer._teacher_rows builds it: 3 rows of teacher prompt + response."""
    g = torch.Generator().manual_seed(seed)
    fields = {k: [] for k in ("prompts", "responses", "response_mask", "input_ids", "position_ids",
                              "attention_mask", "loss_mask", L.QUERY_IDS)}
    for prompt_len, response_len in ((7, 4), (5, 6), (9, 3)):
        prompt = torch.randint(0, VOCAB, (prompt_len,), generator=g)
        response = torch.randint(0, VOCAB, (response_len,), generator=g)
        seq = torch.cat([prompt, response])
        fields["prompts"].append(prompt)
        fields["responses"].append(response)
        for key in ("response_mask", "loss_mask"):
            fields[key].append(torch.ones(response_len, dtype=torch.long))
        fields["input_ids"].append(seq)
        fields["position_ids"].append(torch.arange(seq.numel()))
        fields["attention_mask"].append(torch.ones_like(seq))
        fields[L.QUERY_IDS].append(torch.stack([torch.randperm(VOCAB, generator=g)[:TOPK] for _ in range(response_len)]))
    return TensorDict({k: torch.nested.as_nested_tensor(v, layout=torch.jagged) for k, v in fields.items()},
                      batch_size=3)


def teacher_outputs(w: SRPOWorker) -> tuple[torch.Tensor, torch.Tensor]:
    """(teacher log-probs at the query ids [Σ R, K], teacher entropy [Σ R]) of the worker's teacher pass."""
    out = SRPOWorker.compute_teacher_topk(w, teacher_batch())
    return out[L.TEACHER_LOGP].values(), out[L.TEACHER_ENTROPY].values()


def train_step(actor: torch.nn.Module, step: int) -> None:
    """One SGD step on a next-token loss over random tokens (moves every weight of the actor)."""
    g = torch.Generator().manual_seed(100 + step)
    ids = torch.randint(0, VOCAB, (2, 12), generator=g)
    actor.train()
    loss = actor(input_ids=ids, labels=ids).loss
    loss.backward()
    with torch.no_grad():
        for p in actor.parameters():
            p -= 0.5 * p.grad
            p.grad = None
    actor.eval()


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(x, y), name


@pytest.fixture(scope="module")
def trained():
    """The initial model, and the workers of each kind after the same 2 actor steps (ema at rate 1 and 0: the EMA
    after each step, as the trainer runs it)."""
    initial = tiny_qwen3()
    models = {name: copy.deepcopy(initial) for name in ("live", "ema1", "ema0", "base")}
    workers = {
        "live": worker("live", models["live"], None),
        "ema1": worker("ema", models["ema1"], copy.deepcopy(initial)),
        "ema0": worker("ema", models["ema0"], copy.deepcopy(initial)),
        "base": worker("base", models["base"], copy.deepcopy(initial)),
    }
    for step in (1, 2):
        for name, w in workers.items():
            train_step(w.actor.engine.module, step)
        for name, rate in (("ema1", 1.0), ("ema0", 0.0)):
            result = SRPOWorker.ema_update_teacher(workers[name], rate)
            assert result["applied"] and result["actor_finite"]
    return initial, workers


def test_live_equals_ema_at_rate_1_after_the_same_steps(trained):
    initial, w = trained
    assert w["live"].teacher is None  # no teacher engine for live
    live_logp, live_entropy = teacher_outputs(w["live"])
    ema_logp, ema_entropy = teacher_outputs(w["ema1"])
    assert w["live"].actor.calls == 1 and w["ema1"].teacher.calls == 1 and w["ema1"].actor.calls == 0
    assert_same_weights(w["ema1"].teacher.engine.module, w["ema1"].actor.engine.module)
    assert torch.equal(live_logp, ema_logp) and torch.equal(live_entropy, ema_entropy)
    assert live_logp.shape == (13, TOPK) and bool((live_logp < 0).all())
    # the steps moved the policy: the live teacher is not the initial model's
    base_logp, _ = teacher_outputs(worker("base", initial, initial))
    assert (live_logp - base_logp).abs().max() > 1e-3


def test_base_equals_ema_at_rate_0_and_the_initial_weights(trained):
    initial, w = trained
    base_logp, base_entropy = teacher_outputs(w["base"])
    ema_logp, ema_entropy = teacher_outputs(w["ema0"])
    assert w["base"].teacher.calls == 1 and w["base"].actor.calls == 0
    assert_same_weights(w["base"].teacher.engine.module, initial)
    assert torch.equal(base_logp, ema_logp) and torch.equal(base_entropy, ema_entropy)
    live_logp, _ = teacher_outputs(worker("live", w["base"].actor.engine.module, None))  # the trained actor
    assert (base_logp - live_logp).abs().max() > 1e-3


def test_the_distillation_loss_follows_the_teacher_equivalence(trained):
    """The distilled token loss the update computes from each teacher's log-probs: live = ema(1), base = ema(0)."""
    from srpo_verl.core.losses import distillation_token_loss

    _, w = trained
    student = torch.log_softmax(torch.randn(13, TOPK, generator=torch.Generator().manual_seed(3)), -1) - 0.5
    loss = {name: distillation_token_loss(student, teacher_outputs(w[name])[0], 0.5, True) for name in w}
    assert torch.equal(loss["live"], loss["ema1"]) and torch.equal(loss["base"], loss["ema0"])
    assert not torch.equal(loss["live"], loss["base"])


@pytest.mark.parametrize("kind", ["live", "base"])
def test_only_the_ema_teacher_has_an_ema_and_a_teacher_checkpoint(trained, kind):
    _, w = trained
    for call in (lambda: SRPOWorker.ema_update_teacher(w[kind], 0.05),
                 lambda: SRPOWorker.save_teacher(w[kind], "/nowhere", 1),
                 lambda: SRPOWorker.load_teacher(w[kind], "/nowhere")):
        with pytest.raises(RuntimeError, match=f"srpo.teacher={kind}: only the ema teacher"):
            call()


# ---------------------------------------------------------------------------------------------- the trainer
class WorkerGroup:
    def __init__(self):
        self.calls = []

    def ema_update_teacher(self, rate):
        self.calls.append(("ema", rate))
        return [{"applied": True, "actor_finite": True, "max_abs_delta": 0.01}]

    def save_teacher(self, path, step, max_ckpt_to_keep=None):
        self.calls.append(("save_teacher", path))
        Path(path).mkdir(parents=True)

    def load_teacher(self, path):
        self.calls.append(("load_teacher", path))


def trainer(teacher: str, root: Path, model: Path) -> SRPOTrainer:
    t = object.__new__(SRPOTrainer)
    t.srpo = SRPOSettings(method="srpo", teacher=teacher)
    t._init_run_state()
    t.global_steps, t.timing_raw, t.actor_rollout_wg = 2, {}, WorkerGroup()
    t.config = OmegaConf.create({
        "trainer": {"default_local_dir": str(root), "resume_mode": "auto", "resume_from_path": None, "nnodes": 1,
                    "n_gpus_per_node": 1},
        "actor_rollout_ref": {"model": {"path": str(model)},
                              "actor": {"strategy": "fsdp2", "checkpoint": {"load_contents": ["model"]}}},
    })
    return t


@pytest.fixture
def verl_parts(monkeypatch, tmp_path):
    """verl's _update_actor / _save_checkpoint / _load_checkpoint stand-ins (metrics; actor/ + data.pt + tracker;
    global_steps from the tracker) and a model directory."""
    def update(self, batch, metrics):
        metrics.update({"actor/grad_norm": 0.3, "actor/loss": -0.1})
        return batch

    def save(self):
        folder = Path(self.config.trainer.default_local_dir) / f"global_step_{self.global_steps}"
        (folder / "actor").mkdir(parents=True)
        torch.save({"w": torch.ones(2)}, folder / "actor" / "model_world_size_1_rank_0.pt")
        torch.save({}, folder / "data.pt")
        (folder.parent / ckpt.TRACKER_FILE).write_text(str(self.global_steps))

    def load(self):
        tracker = Path(self.config.trainer.default_local_dir) / ckpt.TRACKER_FILE
        self.global_steps = int(tracker.read_text()) if tracker.exists() else 0

    for name, fn in (("_update_actor", update), ("_save_checkpoint", save), ("_load_checkpoint", load)):
        monkeypatch.setattr(PPOTrainerSync, name, fn)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"vocab_size": VOCAB}))
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    return tmp_path / "ckpt", model


@pytest.mark.parametrize("kind, ema", [("ema", True), ("live", False), ("base", False)])
def test_the_ema_runs_and_is_timed_for_the_ema_teacher_only(verl_parts, kind, ema):
    root, model = verl_parts
    t = trainer(kind, root, model)
    metrics = {}
    t._update_actor("batch", metrics)
    assert (t.actor_rollout_wg.calls == [("ema", 0.05)]) is ema
    assert ("srpo/teacher/ema_applied" in metrics) is ema and ("srpo_ema" in t.timing_raw) is ema


def test_live_checkpoints_and_resumes_the_actor_only(verl_parts, capsys):
    root, model = verl_parts
    t = trainer("live", root, model)
    t._save_checkpoint()
    folder = root / "global_step_2"
    assert sorted(p.name for p in folder.iterdir()) == ["actor", "data.pt", ckpt.WATCHES_FILE] and t.actor_rollout_wg.calls == []
    ckpt.verify_resume(t.config, uses_teacher=False, shapes=lambda: None, echo=lambda line: None)
    resumed = trainer("live", root, model)
    resumed._load_checkpoint()
    assert resumed.global_steps == 2 and resumed.actor_rollout_wg.calls == []
    assert capsys.readouterr().out.strip().endswith("actor (teacher: the live policy, no state)")


def test_base_rebuilds_its_teacher_from_the_model_path_and_refuses_other_weights(verl_parts, capsys):
    root, model = verl_parts
    t = trainer("base", root, model)
    t._save_checkpoint()
    folder = root / "global_step_2"
    assert sorted(p.name for p in folder.iterdir()) == ["actor", "data.pt", ckpt.WATCHES_FILE, ckpt.BASE_TEACHER_FILE]
    record = json.loads((folder / ckpt.BASE_TEACHER_FILE).read_text())
    assert record["weights"] == {"model.safetensors": 64} and record["model_path"] == str(model.resolve())
    resumed = trainer("base", root, model)
    resumed._load_checkpoint()
    assert resumed.actor_rollout_wg.calls == [] and "rebuilt from actor_rollout_ref.model.path" in capsys.readouterr().out
    # the same weights elsewhere pass; other weights are refused, in the driver and in the trainer
    moved = model.parent / "moved"
    model.rename(moved)
    assert ckpt.base_teacher_problem(folder, str(moved)) is None
    (moved / "model.safetensors").write_bytes(b"\0" * 65)
    message = ckpt.base_teacher_problem(folder, str(moved))
    assert message.startswith(f"cannot resume {folder} with srpo.teacher=base") and "actor_rollout_ref.model.path" in message
    with pytest.raises(ckpt.CheckpointError, match="srpo.teacher=base"):
        trainer("base", root, moved)._load_checkpoint()
    with pytest.raises(ckpt.CheckpointError, match="srpo.teacher=base"):
        ckpt.verify_resume(trainer("base", root, moved).config, uses_teacher=False, shapes=lambda: None,
                           echo=lambda line: None, base_teacher=True)


def test_an_ema_resume_still_needs_its_teacher(verl_parts):
    root, model = verl_parts
    trainer("live", root, model)._save_checkpoint()  # no teacher/
    with pytest.raises(FileNotFoundError, match="has no teacher/"):
        trainer("ema", root, model)._load_checkpoint()


# ---------------------------------------------------------------------------------------------- start-up
@pytest.mark.parametrize("values, message", [
    ({"teacher": "trust-region"}, "srpo.teacher='trust-region' is not one of ema, live, base, trust_region"),
    ({"teacher": "live", "method": "grpo"}, "srpo.teacher=live has no effect with srpo.method=grpo"),
    ({"teacher": "base", "method": "grpo"}, "srpo.teacher=base has no effect with srpo.method=grpo"),
    ({"teacher": "live", "ema_rate": 0.1}, "srpo.ema_rate=0.1 has no effect with srpo.teacher=live"),
    ({"teacher": "base", "ema_rate": 1.0}, "srpo.ema_rate=1.0 has no effect with srpo.teacher=base"),
])
def test_bad_teacher_settings_are_refused_in_one_line(values, message):
    with pytest.raises(RunConfigError) as error:
        SRPOSettings.from_config(values)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_kinds_and_what_they_build():
    kinds = {kind: SRPOSettings(teacher=kind) for kind in ("ema", "live", "base")}
    assert SRPOSettings().teacher == "ema"
    assert [(s.teacher_engine, s.teacher_ema) for s in kinds.values()] == [(True, True), (False, False), (True, False)]
    assert SRPOSettings(method="sdpo", teacher="live").uses_teacher
    assert not SRPOSettings(method="grpo").teacher_engine and not SRPOSettings(method="grpo").teacher_ema


@pytest.fixture(scope="module")
def compose(compose_config):
    """compose(*overrides) -> the cpu_srpo config with Hydra's overrides applied (tests/unit/conftest.py)."""
    return lambda *overrides: compose_config("cpu_srpo", *overrides)


def validate(config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return validate_run_config(config)


def test_live_ignores_the_teacher_engine_layout_and_uses_the_actors_budget(compose):
    """live builds no teacher engine: a ref layout the EMA teacher would refuse is no concern of it, and the teacher
    batch must fit the actor's log-prob token budget (rollout.log_prob_*), not ref's."""
    bf16 = "actor_rollout_ref.ref.fsdp_config.model_dtype=bf16"
    assert validate(compose("srpo.teacher=live", bf16)).teacher == "live"
    for kind in ("ema", "base"):
        with pytest.raises(RunConfigError, match="model_dtype"):
            validate(compose(f"srpo.teacher={kind}", bf16))
    dynamic = ["actor_rollout_ref.actor.use_dynamic_bsz=true", "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
               "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4096",
               "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=100",
               "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=4096"]
    assert validate(compose("srpo.teacher=ema", *dynamic)).teacher == "ema"  # ref's budget holds a teacher row
    with pytest.raises(RunConfigError, match=r"^actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=100 \(the "
                                             r"teacher's token budget"):
        validate(compose("srpo.teacher=live", *dynamic))


def test_the_shipped_yaml_defaults_to_the_papers_ema_teacher():
    text = (REPO / "srpo_verl" / "config" / "srpo_trainer.yaml").read_text()
    assert "\n  teacher: ema\n" in text
    comment = text.split("\n  teacher: ema\n")[0].rsplit("\n\n", 1)[1]  # the comment block right above it
    assert comment.lstrip().startswith("# Which weights the teacher forward uses: ema (the paper")
    assert all(f"{kind} (" in comment for kind in ("ema", "live", "base"))
