#!/usr/bin/env bash
# SRPO (sample routing: failed samples with a correct sibling -> DW-SDPO, all others -> GRPO) on Qwen3-4B: the paper's Table 1 row +SRPO.
#   one on-policy update per step; one token-mean over GRPO and entropy-weighted SDPO tokens.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (the paper: 8x NVIDIA H20 96 GB, SGLang rollout;
# NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it). One task per run: TASK=chemistry|physics|biology|
# material|tooluse. Paper windows are 1h/5h/10h of training time (init and validation excluded).
#
# Paper targets, best avg@16 (%) within 1h/5h/10h (Qwen3-4B, SRPO Table 1):
#   Chem | Phys | Bio | Mat | Tool | Avg
#   base: 43.6 | 59.8 | 30.8 | 61.2 | 58.8 | 50.8
#   srpo:  68.8/81.0/82.7 | 69.2/74.0/74.0 | 53.8/58.6/65.8 | 75.7/79.1/81.3 | 61.4/63.1/67.0 | 65.8/71.2/74.2
#
# Hyperparameters: lr 5e-6, mini-batch 32 questions, loss_agg_mode token-mean (srpo_trainer.yaml's defaults).
# The command lists what differs from srpo_verl/config/srpo_trainer.yaml (the settings all methods share).
#
#   TASK=chemistry bash recipes/qwen3_4b/run_srpo.sh                      # one Table 1 cell
#   TASK=physics DRY_RUN=1 bash recipes/qwen3_4b/run_srpo.sh              # print the resolved config only
#   bash recipes/qwen3_4b/run_srpo.sh trainer.total_training_steps=450   # trailing args: Hydra overrides
set -xeuo pipefail

METHOD=srpo
MODEL_TAG=qwen3_4b
TASK=${TASK:-chemistry}                    # chemistry | physics | biology | material | tooluse
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-4B}
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
