#!/usr/bin/env bash
# SRPO with the trust-region teacher on Qwen3-8B (beyond the paper's tables): the routing, loss and GRPO branch of
#   run_srpo.sh, with the official SDPO code's trust-region teacher instead of the EMA: teacher logits
#   lerp(initial weights, current policy, TRUST_REGION_RATE) on the teacher prompt (a community SRPO port trains with
#   0.1; the official default is 0.05). No EMA copy is updated or checkpointed: the initial weights are rebuilt from
#   MODEL_PATH on resume. The teacher pass runs the actor's and the reference's forwards one micro-batch at a time
#   (docs/SRPO_ON_VERL.md, "Teacher kinds"). No paper target: compare it with run_srpo.sh on the same task.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it). One task
# per run: TASK=chemistry|physics|biology|material|tooluse.
#
# Hyperparameters: SRPO's (lr 5e-6, one mini-batch of 32 questions, token-mean: srpo_trainer.yaml's defaults); the
# trust-region teacher needs the one optimizer step per training step that these give (refused otherwise).
# The command lists what differs from srpo_verl/config/srpo_trainer.yaml (the settings all methods share).
#
#   TASK=chemistry bash recipes/qwen3_8b/run_srpo_trust_region.sh
#   TASK=physics DRY_RUN=1 bash recipes/qwen3_8b/run_srpo_trust_region.sh   # print the resolved config only
set -xeuo pipefail

METHOD=srpo
RUN_NAME=srpo_trust_region
MODEL_TAG=qwen3_8b
TASK=${TASK:-chemistry}                    # chemistry | physics | biology | material | tooluse
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-8B}
TRUST_REGION_RATE=${TRUST_REGION_RATE:-0.1}   # the current policy's share of the teacher logits
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
    srpo.teacher=trust_region \
    "srpo.trust_region_rate=${TRUST_REGION_RATE}" \
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
