#!/usr/bin/env bash
# SDPO restricted to correct samples (Fig. 1b) on Qwen3-8B: the paper's Fig. 1(b), no table.
#   SDPO settings; only correct samples with another correct sibling are distilled.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (the paper: 8x NVIDIA H20 96 GB, SGLang rollout;
# NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it). One task per run: TASK=chemistry|physics|biology|
# material|tooluse. Paper windows are 1h/5h/10h of training time (init and validation excluded).
#
# Paper target (Qwen3-8B, SRPO Table 2 / Fig. 1b): none reported: degrades and collapses earlier than SDPO on Chemistry (qualitative)
#
# Hyperparameters: lr 1e-5, mini-batch 32 questions, loss_agg_mode seq-mean-token-mean.
# The command lists what differs from srpo_verl/config/srpo_trainer.yaml (the settings all methods share).
#
#   TASK=chemistry bash recipes/qwen3_8b/run_sdpo_correct_only.sh                      # one Table 1 cell
#   TASK=physics DRY_RUN=1 bash recipes/qwen3_8b/run_sdpo_correct_only.sh              # print the resolved config only
#   bash recipes/qwen3_8b/run_sdpo_correct_only.sh trainer.total_training_steps=450   # trailing args: Hydra overrides
set -xeuo pipefail

METHOD=sdpo_correct_only
MODEL_TAG=qwen3_8b
TASK=${TASK:-chemistry}                    # chemistry | physics | biology | material | tooluse
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-8B}
REPROMPT_TRUNCATION=${REPROMPT_TRUNCATION:-right}   # the SDPO code's (docs/SRPO_ON_VERL.md)
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
    "srpo.reprompt_truncation=${REPROMPT_TRUNCATION}" \
    actor_rollout_ref.actor.optim.lr=1e-5 \
    actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean \
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
    "trainer.default_local_dir=${CKPT_DIR}/${MODEL_TAG}/${METHOD}/${TASK}" \
    "trainer.validation_data_dir=${RUN_DIR}/val_generations" \
    "${RAY_ENV_ARGS[@]}" \
    "$@"
