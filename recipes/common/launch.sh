# shellcheck shell=bash
# Launch plumbing of the paper recipes (recipes/qwen3_*/run_*.sh source it after their knobs; not run on its own):
# input checks, where a run's checkpoints and logs go, and DRY_RUN. It sets no hyperparameter: those are
# srpo_verl/config/srpo_trainer.yaml's defaults and the overrides written out in each recipe.
# Reads METHOD, MODEL_TAG, TASK, ROLLOUT_ENGINE (and RUN_NAME, default METHOD) from the recipe; sets DATA_DIR, CKPT_DIR, RUN_DIR, PROJECT_NAME,
# EXP_NAME, LOGGERS, PYTHON, DRY_RUN_ARGS and RAY_ENV_ARGS for its command, and srpo_run to launch it.

REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DATA_DIR=${DATA_DIR:-${REPO_ROOT}/data}      # holds <task>/{train,test}.parquet (scripts/data/prepare_*.py)
CKPT_DIR=${CKPT_DIR:-${REPO_ROOT}/checkpoints}
RUNS_DIR=${RUNS_DIR:-${REPO_ROOT}/runs}
RUN_NAME=${RUN_NAME:-${METHOD}}                                   # a method variant's own folder name
RUN_DIR=${RUN_DIR:-${RUNS_DIR}/${MODEL_TAG}/${RUN_NAME}/${TASK}}   # the report's layout; scripts/eval puts its own
RUN_STAMP=${RUN_STAMP:-$(date +%Y%m%d-%H%M%S)}                   # names this launch's log files
PROJECT_NAME=${PROJECT_NAME:-srpo_verl_paper}
EXP_NAME=${EXP_NAME:-${RUN_NAME}-${MODEL_TAG}-${TASK}}
LOGGERS=${LOGGERS:-[console,file,tensorboard]}   # add wandb with WANDB_API_KEY set
PYTHON=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}                            # 1: print the composed, resolved config and exit (no run)

# Knobs of the earlier recipes that are now Hydra keys: refused rather than silently ignored.
for knob in LR:actor_rollout_ref.actor.optim.lr MINI_BATCH:actor_rollout_ref.actor.ppo_mini_batch_size \
        LOSS_AGG_MODE:actor_rollout_ref.actor.loss_agg_mode TRAIN_BATCH:data.train_batch_size \
        ROLLOUT_N:actor_rollout_ref.rollout.n MAX_PROMPT_LEN:data.max_prompt_length \
        MAX_RESPONSE_LEN:data.max_response_length MAX_REPROMPT_LEN:srpo.max_reprompt_len \
        VAL_N:actor_rollout_ref.rollout.val_kwargs.n VAL_TEMPERATURE:actor_rollout_ref.rollout.val_kwargs.temperature \
        VAL_TOP_P:actor_rollout_ref.rollout.val_kwargs.top_p TEST_FREQ:trainer.test_freq \
        CLIP_LOW:actor_rollout_ref.actor.clip_ratio_low CLIP_HIGH:actor_rollout_ref.actor.clip_ratio_high \
        ROLLOUT_IS_CLIP:algorithm.rollout_correction.rollout_is_threshold \
        WARMUP_STEPS:actor_rollout_ref.actor.optim.lr_warmup_steps TOTAL_EPOCHS:trainer.total_epochs \
        VAL_BEFORE_TRAIN:trainer.val_before_train CONFIG_NAME:--config-name; do
    name=${knob%%:*}
    if [[ -n "${!name:-}" ]]; then
        echo "error: ${name} is no longer a recipe knob: pass ${knob#*:}=<value> after the script (a Hydra override)" >&2
        exit 2
    fi
done

case "${TASK}" in
    chemistry|physics|biology|material|tooluse|math) ;;  # math: scripts/data/prepare_math.py
    *) echo "error: TASK=${TASK} is not one of chemistry physics biology material tooluse math" >&2; exit 2 ;;
esac
case "${ROLLOUT_ENGINE}" in
    vllm|sglang) ;;
    *) echo "error: ROLLOUT_ENGINE=${ROLLOUT_ENGINE} is not one of vllm sglang" >&2; exit 2 ;;
esac
if [[ "${DRY_RUN}" != "1" ]]; then
    for split in train test; do
        if [[ ! -f "${DATA_DIR}/${TASK}/${split}.parquet" ]]; then
            echo "error: ${DATA_DIR}/${TASK}/${split}.parquet not found; prepare the data (docs/TASKS.md) or set DATA_DIR" >&2
            exit 2
        fi
    done
fi

DRY_RUN_ARGS=()
# shellcheck disable=SC2034  # the recipe's command reads it
if [[ "${DRY_RUN}" == "1" ]]; then
    DRY_RUN_ARGS=(--cfg job --resolve)
fi

# verl's file logger truncates its file at start-up, so every launch (e.g. a resume) gets its own JSONL.
export VERL_FILE_LOGGER_PATH="${RUN_DIR}/metrics_${RUN_STAMP}.jsonl" TENSORBOARD_DIR="${RUN_DIR}/tensorboard"
export TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
# Ray actors on other nodes do not inherit this shell's environment: the command passes these explicitly.
RAY_ENV_ARGS=(
    "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH=${VERL_FILE_LOGGER_PATH}"
    "++ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR=${TENSORBOARD_DIR}"
)
# Belt and braces for the teacher methods: verl computes sampled-token log-probs with flash-attn's Triton
# cross-entropy when flash-attn is installed, and its backward overwrites the logits in place. srpo_verl never
# lets it run on SDPO/SRPO logits (the worker sets distillation_only and returns its own log-probs); this keeps
# verl on its out-of-place torch path should any other pass call it. GRPO stays exactly verl's trainer.
if [[ "${METHOD}" != "grpo" ]]; then
    export VERL_DISABLE_FLASH_ATTN_CE=${VERL_DISABLE_FLASH_ATTN_CE:-1}
    RAY_ENV_ARGS+=(
        "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_DISABLE_FLASH_ATTN_CE='${VERL_DISABLE_FLASH_ATTN_CE}'")
fi

# Runs the recipe's command; outside DRY_RUN its output also goes to ${RUN_DIR}/console_<stamp>.log.
srpo_run() {
    if [[ "${DRY_RUN}" == "1" ]]; then
        "$@"
        return
    fi
    mkdir -p "${RUN_DIR}"
    "$@" 2>&1 | tee "${RUN_DIR}/console_${RUN_STAMP}.log"
}
