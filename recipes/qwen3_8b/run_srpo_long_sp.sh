#!/usr/bin/env bash
# SRPO with long responses on Qwen3-8B (beyond the paper's tables): run_srpo.sh with 16384-token responses and
#   Ulysses sequence parallelism (SP=4 by default): each packed micro-batch is split over an SP group of 4 GPUs in
#   the pi_old pass, the teacher pass and the update (the teacher takes the actor's SP size), so the [tokens, vocab]
#   logits, the top-100 distillation and the activations of a 34816-token teacher sequence are spread over 4 GPUs
#   (docs/SRPO_ON_VERL.md, "Ulysses sequence parallelism"; per-rank memory of SP=2 vs SP=1 in docs/PERFORMANCE.md).
#   No paper target: the paper caps responses at 8192.
#
# Lengths: prompt 2048 + response 16384; teacher prompt cap 2048 + 16384 = 18432 (the paper's rule: prompt +
# response), so the longest (teacher) sequence is 34816 tokens, inside Qwen3-8B's 40960 positions. Token budgets are
# per GPU: verl's dynamic micro-batch holds budget x SP tokens, so 8704 x 4 = 34816 fits one teacher sequence.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (2 data-parallel groups of SP=4). Attention must be a flash
# implementation (verl's default flash_attention_2): verl splits attention only there, and srpo_verl refuses
# eager / sdpa with SP. SP must divide Qwen3-8B's 32 query and 8 key-value heads (1, 2, 4, 8).
#
# Hyperparameters: SRPO's (lr 5e-6, mini-batch 32 questions, token-mean: srpo_trainer.yaml's defaults).
#
#   TASK=chemistry bash recipes/qwen3_8b/run_srpo_long_sp.sh
#   TASK=physics SP=8 DRY_RUN=1 bash recipes/qwen3_8b/run_srpo_long_sp.sh   # print the resolved config only
set -xeuo pipefail

METHOD=srpo
RUN_NAME=srpo_long_sp
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
SP=${SP:-4}                                # Ulysses sequence-parallel size (divides 32 and 8 heads)
MAX_RESPONSE=16384
MAX_REPROMPT=$((2048 + MAX_RESPONSE))      # teacher prompt cap: student prompt + a demonstration
TOKEN_BUDGET=${TOKEN_BUDGET:-$(( (MAX_REPROMPT + MAX_RESPONSE + SP - 1) / SP ))}   # per GPU; x SP per micro-batch
ROLLOUT_MAX_MODEL_LEN=${ROLLOUT_MAX_MODEL_LEN:-$((2048 + MAX_RESPONSE + 64))}     # student prompt + response + spare
SAVE_FREQ=${SAVE_FREQ:-50}                 # checkpoint every N steps; -1 = never

# shellcheck source-path=SCRIPTDIR source=../common/launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/launch.sh"

srpo_run "${PYTHON}" -m srpo_verl.main "${DRY_RUN_ARGS[@]}" --config-name srpo_trainer \
    "srpo.method=${METHOD}" \
    "data.max_response_length=${MAX_RESPONSE}" \
    "srpo.max_reprompt_len=${MAX_REPROMPT}" \
    "actor_rollout_ref.actor.ulysses_sequence_parallel_size=${SP}" \
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
