#!/usr/bin/env bash
# The CPU quickstart: a tiny Qwen3 learns a synthetic task with RL through verl 0.9.1's real trainer, on CPU.
#
#   bash scripts/quickstart.sh                      # SRPO, 40 steps, < 10 min on 2 cores once .venv exists
#   ALGO=grpo STEPS=20 bash scripts/quickstart.sh   # knobs below; trailing arguments are Hydra overrides
#
# Steps: (1) scripts/setup_env.sh (idempotent), (2) build the tiny model + data (srpo_verl.tiny.build, cached in
# $ASSETS when builder version and seed match), (3) train with `python -m srpo_verl.main` and the CPU backend
# (docs/CPU_BACKEND.md), with a progress bar and one line per step, (4) print a table and write a PNG of train
# reward and validation accuracy. Outputs: $RUN_DIR/{train.log,metrics.jsonl,summary.md,curves.png}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Knobs (environment): ALGO (srpo | sdpo | grpo), STEPS, SEED, LEVEL (tiny-asset level), BATCH (prompts per step),
# N (rollouts per prompt), LR, TEST_FREQ, VAL_N (validation samples per test prompt); their defaults are set in
# srpo_verl/tiny/defaults.py (read below, once .venv exists). And:
SKIP_SETUP=${SKIP_SETUP:-0}     # 1: do not run scripts/setup_env.sh
DEBUG=${DEBUG:-0}               # 1: tracebacks for config errors (HYDRA_FULL_ERROR=1) instead of one error line
PY="$ROOT/.venv/bin/python"

started=$(date +%s)
if [[ "$SKIP_SETUP" != 1 ]]; then
    bash scripts/setup_env.sh
fi
eval "$("$PY" -m srpo_verl.tiny.defaults)"
if [[ "$LEVEL" == quickstart ]]; then
    ASSETS=${ASSETS:-"$ROOT/runs/tiny_assets_seed$SEED"}
else
    ASSETS=${ASSETS:-"$ROOT/runs/tiny_assets_${LEVEL}_seed$SEED"}
fi
RUN_DIR=${RUN_DIR:-"$ROOT/runs/quickstart_$ALGO"}

case "$ALGO" in
    grpo) CONFIG=(--config-name cpu_grpo) ;;
    srpo|sdpo) CONFIG=(--config-name cpu_srpo "srpo.method=$ALGO") ;;
    *) echo "[quickstart] ALGO must be srpo, sdpo or grpo, got '$ALGO'" >&2; exit 2 ;;
esac

"$PY" -m srpo_verl.tiny.build --out "$ASSETS" --seed "$SEED" --level "$LEVEL" --reuse
built=$(date +%s)

mkdir -p "$RUN_DIR"
export SRPO_VERL_CPU=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
if [[ "$DEBUG" == 1 ]]; then export HYDRA_FULL_ERROR=1; fi
export VERL_FILE_LOGGER_PATH="$RUN_DIR/metrics.jsonl"
echo "[quickstart] $ALGO for $STEPS steps ($BATCH prompts x $N rollouts), outputs in $RUN_DIR"
"$PY" -m srpo_verl.tiny.progress --metrics "$VERL_FILE_LOGGER_PATH" --steps "$STEPS" --log "$RUN_DIR/train.log" -- \
    "$PY" -m srpo_verl.main "${CONFIG[@]}" \
    data.train_files="$ASSETS/data/train.parquet" data.val_files="$ASSETS/data/test.parquet" \
    ++data.apply_chat_template_kwargs.enable_thinking=false \
    data.train_batch_size="$BATCH" data.seed="$SEED" \
    actor_rollout_ref.model.path="$ASSETS/model" \
    actor_rollout_ref.actor.optim.lr="$LR" actor_rollout_ref.actor.ppo_mini_batch_size="$BATCH" \
    actor_rollout_ref.rollout.n="$N" \
    actor_rollout_ref.rollout.val_kwargs.do_sample=true actor_rollout_ref.rollout.val_kwargs.temperature=1.0 \
    actor_rollout_ref.rollout.val_kwargs.n="$VAL_N" \
    trainer.total_training_steps="$STEPS" trainer.test_freq="$TEST_FREQ" trainer.val_before_train=true \
    'trainer.logger=[console,file]' trainer.experiment_name="quickstart_$ALGO" \
    trainer.default_local_dir="$RUN_DIR/checkpoints" hydra.run.dir="$RUN_DIR/hydra" \
    "$@"

"$PY" -m srpo_verl.tiny.report --metrics "$VERL_FILE_LOGGER_PATH" --out "$RUN_DIR" \
    --title "tiny Qwen3, $ALGO, $BATCH prompts x $N rollouts (CPU)"
finished=$(date +%s)
echo "[quickstart] wall time $((finished - started)) s (setup + tiny assets $((built - started)) s, training + report $((finished - built)) s)"
