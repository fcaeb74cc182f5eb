# shellcheck shell=bash
# Shared body of the paper recipes (recipes/qwen3_*/run_*.sh source this file; it is not run on its own).
#
# The caller sets, before sourcing:
#   METHOD          srpo.method: grpo | sdpo | srpo | srpo_no_dw | adv_mix | sdpo_incorrect_only | sdpo_correct_only
#   MODEL_TAG       folder name for runs/checkpoints (qwen3_8b, qwen3_4b)
#   MODEL_PATH, LR, MINI_BATCH, LOSS_AGG_MODE   (the per-method hyperparameters, SRPO_SPEC §2 Table 3)
# and then calls:  srpo_paper_run "$@"   (trailing arguments are Hydra overrides and win over everything here).
#
# Every knob below is VAR=${VAR:-default}; export it or prefix the command to change it. The values are the paper's
# (SRPO Table 3 / SRPO_SPEC §2 and §7) unless marked as a hardware/launch choice.

# ---- what to run ------------------------------------------------------------------------------------------------
TASK=${TASK:-chemistry}                      # chemistry | physics | biology | material | tooluse | math
REPO_ROOT=${REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DATA_DIR=${DATA_DIR:-${REPO_ROOT}/data}      # holds <task>/{train,test}.parquet (scripts/data/prepare_*.py)
CKPT_DIR=${CKPT_DIR:-${REPO_ROOT}/checkpoints}
RUNS_DIR=${RUNS_DIR:-${REPO_ROOT}/runs}      # logs: ${RUNS_DIR}/${MODEL_TAG}/${METHOD}/${TASK}/ (the report's layout)
EXP_NAME=${EXP_NAME:-${METHOD}-${MODEL_TAG}-${TASK}}
PROJECT_NAME=${PROJECT_NAME:-srpo_verl_paper}

# ---- hardware / launch (paper: 1 node x 8 H20, SGLang; the SDPO paper used vLLM) ---------------------------------
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}       # vllm | sglang
ROLLOUT_TP=${ROLLOUT_TP:-1}                  # tensor parallel size of each rollout replica
ROLLOUT_GPU_MEM=${ROLLOUT_GPU_MEM:-0.55}     # the SDPO code's gpu_memory_utilization
PARAM_OFFLOAD=${PARAM_OFFLOAD:-False}
OPTIM_OFFLOAD=${OPTIM_OFFLOAD:-False}

# ---- paper hyperparameters common to every method -----------------------------------------------------------------
TRAIN_BATCH=${TRAIN_BATCH:-32}               # questions per step
ROLLOUT_N=${ROLLOUT_N:-8}                    # rollouts per question
MAX_PROMPT_LEN=${MAX_PROMPT_LEN:-2048}
MAX_RESPONSE_LEN=${MAX_RESPONSE_LEN:-8192}
MAX_REPROMPT_LEN=${MAX_REPROMPT_LEN:-10240}  # teacher prompt cap (question + demonstration)
# How a teacher prompt over MAX_REPROMPT_LEN is cut (srpo.reprompt_truncation): the SDPO baselines use the official
# SDPO code's `right` (the token sequence is cut at the cap, as its apply_chat_template(truncation=True) does);
# SRPO and its ablations keep srpo_verl's `demo` (shorten the demonstration, keep the question's end, the closing
# instruction and the generation header). docs/SRPO_ON_VERL.md "Baseline fidelity".
case "${METHOD:-}" in
    sdpo|sdpo_*) REPROMPT_TRUNCATION=${REPROMPT_TRUNCATION:-right} ;;
    *) REPROMPT_TRUNCATION=${REPROMPT_TRUNCATION:-demo} ;;
esac
VAL_N=${VAL_N:-16}                           # avg@16
VAL_TEMPERATURE=${VAL_TEMPERATURE:-0.6}
VAL_TOP_P=${VAL_TOP_P:-0.95}
TEST_FREQ=${TEST_FREQ:-5}
CLIP_LOW=${CLIP_LOW:-0.2}
CLIP_HIGH=${CLIP_HIGH:-0.28}
ROLLOUT_IS_CLIP=${ROLLOUT_IS_CLIP:-2.0}      # token-level truncated IS (inference engine vs FSDP pi_old)
WARMUP_STEPS=${WARMUP_STEPS:-10}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-30}             # the SDPO code's default; the paper stops at 10 h of training time
VAL_BEFORE_TRAIN=${VAL_BEFORE_TRAIN:-True}   # step-0 validation = the table's "base" row
SAVE_FREQ=${SAVE_FREQ:-50}                   # checkpoints (actor + EMA teacher) every N steps; -1 = never
# Token budget per GPU micro-batch (dynamic batch size): the longest sequence any forward sees is the teacher's,
# MAX_REPROMPT_LEN + MAX_RESPONSE_LEN = 18432 tokens, so every budget is at least that.
TOKEN_BUDGET=${TOKEN_BUDGET:-$((MAX_REPROMPT_LEN + MAX_RESPONSE_LEN))}
# The rollout engine only sees student prompts: prompt + response, plus headroom (SGLang keeps one token spare).
ROLLOUT_MAX_MODEL_LEN=${ROLLOUT_MAX_MODEL_LEN:-$((MAX_PROMPT_LEN + MAX_RESPONSE_LEN + 64))}

# ---- logging and the entry point -----------------------------------------------------------------------------------
LOGGERS=${LOGGERS:-[console,file,tensorboard]}   # add wandb with WANDB_API_KEY set
PYTHON=${PYTHON:-python3}
CONFIG_NAME=${CONFIG_NAME:-srpo_trainer}
DRY_RUN=${DRY_RUN:-0}                            # 1: print the composed, resolved config and exit (no run)

srpo_paper_check_inputs() {
    case "${TASK}" in
        chemistry|physics|biology|material|tooluse|math) ;;  # math: scripts/data/prepare_math.py
        *) echo "error: TASK=${TASK} is not one of chemistry physics biology material tooluse math" >&2; return 2 ;;
    esac
    case "${ROLLOUT_ENGINE}" in
        vllm|sglang) ;;
        *) echo "error: ROLLOUT_ENGINE=${ROLLOUT_ENGINE} is not one of vllm sglang" >&2; return 2 ;;
    esac
    if [[ "${DRY_RUN}" != "1" ]]; then
        local split
        for split in train test; do
            if [[ ! -f "${DATA_DIR}/${TASK}/${split}.parquet" ]]; then
                echo "error: ${DATA_DIR}/${TASK}/${split}.parquet not found; prepare the data (docs/TASKS.md) or set DATA_DIR" >&2
                return 2
            fi
        done
    fi
}

srpo_paper_run() {
    srpo_paper_check_inputs
    local run_dir="${RUN_DIR:-${RUNS_DIR}/${MODEL_TAG}/${METHOD}/${TASK}}"   # RUN_DIR: scripts/eval puts its own
    local stamp=${RUN_STAMP:-$(date +%Y%m%d-%H%M%S)}   # names this launch's log files
    # verl's file logger truncates its file at start-up, so every launch (e.g. a resume) gets its own JSONL.
    local jsonl="${run_dir}/metrics_${stamp}.jsonl"
    local tensorboard_dir="${run_dir}/tensorboard"
    export VERL_FILE_LOGGER_PATH="${jsonl}" TENSORBOARD_DIR="${tensorboard_dir}"
    export TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
    # Belt and braces for the teacher methods: verl computes sampled-token log-probs with flash-attn's Triton
    # cross-entropy when flash-attn is installed, and its backward overwrites the logits in place. srpo_verl never
    # lets it run on SDPO/SRPO logits (the worker sets distillation_only and returns its own log-probs); this keeps
    # verl on its out-of-place torch path should any other pass call it. GRPO stays exactly verl's trainer.
    local teacher_env=()
    if [[ "${METHOD}" != "grpo" ]]; then
        export VERL_DISABLE_FLASH_ATTN_CE=${VERL_DISABLE_FLASH_ATTN_CE:-1}
        teacher_env=("++ray_kwargs.ray_init.runtime_env.env_vars.VERL_DISABLE_FLASH_ATTN_CE='${VERL_DISABLE_FLASH_ATTN_CE}'")
    fi

    local args=(
        --config-name "${CONFIG_NAME}"
        "srpo.method=${METHOD}"
        srpo.success_threshold=0.5
        srpo.topk=100
        srpo.add_tail=True
        srpo.alpha=0.5
        srpo.ema_rate=0.05
        srpo.is_clip=2.0
        srpo.dw_beta=1.0
        srpo.adv_mix_lambda=0.9
        "srpo.max_reprompt_len=${MAX_REPROMPT_LEN}"
        "srpo.reprompt_truncation=${REPROMPT_TRUNCATION}"
        srpo.include_environment_feedback=False
        algorithm.adv_estimator=grpo
        algorithm.norm_adv_by_std_in_grpo=False
        algorithm.use_kl_in_reward=False
        algorithm.rollout_correction.rollout_is=token
        "algorithm.rollout_correction.rollout_is_threshold=${ROLLOUT_IS_CLIP}"
        algorithm.rollout_correction.bypass_mode=False
        "data.train_files=${DATA_DIR}/${TASK}/train.parquet"
        "data.val_files=${DATA_DIR}/${TASK}/test.parquet"
        "data.train_batch_size=${TRAIN_BATCH}"
        "data.max_prompt_length=${MAX_PROMPT_LEN}"
        "data.max_response_length=${MAX_RESPONSE_LEN}"
        data.filter_overlong_prompts=True
        data.truncation=error
        data.shuffle=True
        "data.apply_chat_template_kwargs={enable_thinking:False}"
        "actor_rollout_ref.model.path=${MODEL_PATH}"
        actor_rollout_ref.model.use_remove_padding=True
        actor_rollout_ref.model.enable_gradient_checkpointing=True
        actor_rollout_ref.actor.strategy=fsdp2
        "actor_rollout_ref.actor.optim.lr=${LR}"
        "actor_rollout_ref.actor.optim.lr_warmup_steps=${WARMUP_STEPS}"
        actor_rollout_ref.actor.optim.weight_decay=0.01
        actor_rollout_ref.actor.optim.clip_grad=1.0
        "actor_rollout_ref.actor.ppo_mini_batch_size=${MINI_BATCH}"
        actor_rollout_ref.actor.ppo_epochs=1
        actor_rollout_ref.actor.use_dynamic_bsz=True
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=${TOKEN_BUDGET}"
        "actor_rollout_ref.actor.clip_ratio_low=${CLIP_LOW}"
        "actor_rollout_ref.actor.clip_ratio_high=${CLIP_HIGH}"
        actor_rollout_ref.actor.clip_ratio_c=3.0
        "actor_rollout_ref.actor.loss_agg_mode=${LOSS_AGG_MODE}"
        actor_rollout_ref.actor.use_kl_loss=False
        actor_rollout_ref.actor.kl_loss_coef=0.0
        actor_rollout_ref.actor.entropy_coeff=0
        "actor_rollout_ref.actor.fsdp_config.param_offload=${PARAM_OFFLOAD}"
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload=${OPTIM_OFFLOAD}"
        "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=${TOKEN_BUDGET}"
        "actor_rollout_ref.rollout.name=${ROLLOUT_ENGINE}"
        "actor_rollout_ref.rollout.n=${ROLLOUT_N}"
        actor_rollout_ref.rollout.temperature=1.0
        actor_rollout_ref.rollout.top_p=1.0
        actor_rollout_ref.rollout.calculate_log_probs=True
        "actor_rollout_ref.rollout.tensor_model_parallel_size=${ROLLOUT_TP}"
        "actor_rollout_ref.rollout.gpu_memory_utilization=${ROLLOUT_GPU_MEM}"
        "actor_rollout_ref.rollout.max_model_len=${ROLLOUT_MAX_MODEL_LEN}"
        "actor_rollout_ref.rollout.max_num_batched_tokens=${ROLLOUT_MAX_MODEL_LEN}"
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=${TOKEN_BUDGET}"
        "actor_rollout_ref.rollout.val_kwargs.n=${VAL_N}"
        "actor_rollout_ref.rollout.val_kwargs.temperature=${VAL_TEMPERATURE}"
        "actor_rollout_ref.rollout.val_kwargs.top_p=${VAL_TOP_P}"
        actor_rollout_ref.rollout.val_kwargs.do_sample=True
        "trainer.logger=${LOGGERS}"
        "trainer.project_name=${PROJECT_NAME}"
        "trainer.experiment_name=${EXP_NAME}"
        "trainer.nnodes=${NNODES}"
        "trainer.n_gpus_per_node=${GPUS_PER_NODE}"
        "trainer.test_freq=${TEST_FREQ}"
        "trainer.save_freq=${SAVE_FREQ}"
        "trainer.total_epochs=${TOTAL_EPOCHS}"
        "trainer.val_before_train=${VAL_BEFORE_TRAIN}"
        trainer.resume_mode=auto
        "trainer.default_local_dir=${CKPT_DIR}/${MODEL_TAG}/${METHOD}/${TASK}"
        "trainer.validation_data_dir=${run_dir}/val_generations"
        # Ray actors on other nodes do not inherit this shell's environment: pass the log locations explicitly.
        "++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH=${jsonl}"
        "++ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR=${tensorboard_dir}"
        "${teacher_env[@]}"
    )

    if [[ "${DRY_RUN}" == "1" ]]; then
        # Hydra's flags go first: the overrides must stay one contiguous run of positional arguments.
        "${PYTHON}" -m srpo_verl.main --cfg job --resolve "${args[@]}" "$@"
        return
    fi
    mkdir -p "${run_dir}"
    "${PYTHON}" -m srpo_verl.main "${args[@]}" "$@" 2>&1 | tee "${run_dir}/console_${stamp}.log"
}
