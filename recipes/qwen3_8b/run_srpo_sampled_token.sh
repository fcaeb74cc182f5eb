#!/usr/bin/env bash
# SRPO with token-level distillation on Qwen3-8B (beyond the paper's tables): the routing, entropy weights and GRPO
#   branch of run_srpo.sh, with SDPO's token-level loss on the sampled token, (log p_S - log p_T).detach() * log p_S
#   (reverse KL, the official SDPO code's non-full-logit branch) instead of the top-100 + tail JSD. The teacher
#   returns 2 values per token instead of 101 and the pi_old pass takes no top-K ids (docs/SRPO_ON_VERL.md,
#   "Distillation modes"). No paper target: compare it with run_srpo.sh on the same task.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it). One task
# per run: TASK=chemistry|physics|biology|material|tooluse.
#
# Hyperparameters: SRPO's (lr 5e-6, mini-batch 32 questions, token-mean: srpo_trainer.yaml's defaults), alpha 1.
# The command lists what differs from srpo_verl/config/srpo_trainer.yaml (the settings all methods share).
#
#   TASK=chemistry bash recipes/qwen3_8b/run_srpo_sampled_token.sh
#   TASK=physics DRY_RUN=1 bash recipes/qwen3_8b/run_srpo_sampled_token.sh   # print the resolved config only
set -xeuo pipefail

METHOD=srpo
RUN_NAME=srpo_sampled_token
MODEL_TAG=qwen3_8b
TASK=${TASK:-chemistry}                    # chemistry | physics | biology | material | tooluse
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-8B}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}     # vllm | sglang (the paper: SGLang; the SDPO paper: vLLM)
ROLLOUT_TP=${ROLLOUT_TP:-1}                # tensor parallel size of each rollout replica
ROLLOUT_GPU_MEM=${ROLLOUT_GPU_MEM:-0.55}   # the SDPO code's gpu_memory_utilization
PARAM_OFFLOAD=${PARAM_OFFLOAD:-False}
OPTIM_OFFLOAD=${OPTIM_OFFLOAD:-False}
TOKEN_BUDGET=${TOKEN_BUDGET:-18432}        # per GPU micro-batch: teacher prompt 10240 + response 8192
ROLLOUT_MAX_MODEL_LEN=${ROLLOUT_MAX_MODEL_LEN:-10304}   # student prompt 2048 + response 8192 + 64 spare
SAVE_FREQ=${SAVE_FREQ:-50}                 # checkpoint every N steps; -1 = never

# shellcheck source-path=SCRIPTDIR source=../common/launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/launch.sh"

srpo_run "${PYTHON}" -m srpo_verl.main "${DRY_RUN_ARGS[@]}" --config-name srpo_trainer \
    "srpo.method=${METHOD}" \
    srpo.distill_mode=sampled_token \
    srpo.alpha=1.0 \
    "data.train_files=${DATA_DIR}/${TASK}/train.parquet" \
    "data.val_files=${DATA_DIR}/${TASK}/test.parquet" \
    "actor_rollout_ref.model.path=${MODEL_PATH}" \
    actor_rollout_ref.actor.kl_loss_coef=0.0 \
    "actor_rollout_ref.actor.fsdp_config.param_offload=${PARAM_OFFLOAD}" \
    "actor_rollout_ref.actor.fsdp_config.optimizer_offload=${OPTIM_OFFLOAD}" \
    actor_rollout_ref.actor.use_dynamic_bsz=True \
    "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=${TOKEN_BUDGET}" \
    "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=${TOKEN_BUDGET}" \
    "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=${TOKEN_BUDGET}" \
    "actor_rollout_ref.rollout.name=${ROLLOUT_ENGINE}" \
    "actor_rollout_ref.rollout.tensor_model_parallel_size=${ROLLOUT_TP}" \
    "actor_rollout_ref.rollout.gpu_memory_utilization=${ROLLOUT_GPU_MEM}" \
    "actor_rollout_ref.rollout.max_model_len=${ROLLOUT_MAX_MODEL_LEN}" \
    "actor_rollout_ref.rollout.max_num_batched_tokens=${ROLLOUT_MAX_MODEL_LEN}" \
    "trainer.logger=${LOGGERS}" \
    "trainer.project_name=${PROJECT_NAME}" \
    "trainer.experiment_name=${EXP_NAME}" \
    "trainer.nnodes=${NNODES}" \
    "trainer.n_gpus_per_node=${GPUS_PER_NODE}" \
    "trainer.save_freq=${SAVE_FREQ}" \
    "trainer.default_local_dir=${CKPT_DIR}/${MODEL_TAG}/${RUN_NAME}/${TASK}" \
    "trainer.validation_data_dir=${RUN_DIR}/val_generations" \
    "${RAY_ENV_ARGS[@]}" \
    "$@"
