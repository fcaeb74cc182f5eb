#!/usr/bin/env bash
# SRPO on Qwen3-8B with LoRA (beyond the paper's tables, which train all weights): run_srpo.sh's routing, entropy
#   weights, top-100 + tail distillation and EMA teacher, with the actor trained through a rank-64 LoRA adapter on
#   every linear layer. The teacher shares the actor's frozen base weights: the EMA teacher is an fp32 EMA of the
#   adapter only (~0.7 GB for Qwen3-8B instead of a 32.8 GB model copy per node and per checkpoint; docs/PERFORMANCE.md),
#   swapped into the actor around the teacher pass (docs/SRPO_ON_VERL.md, "LoRA"). No paper target: compare it with
#   run_srpo.sh on the same task.
#
# Hardware assumed: 1 node x 8 GPUs with >= 80 GB each (NNODES / GPUS_PER_NODE / ROLLOUT_ENGINE change it). One task
# per run: TASK=chemistry|physics|biology|material|tooluse.
#
# Hyperparameters: SRPO's (mini-batch 32 questions, token-mean: srpo_trainer.yaml's defaults) except the learning
# rate, 5e-5 = 10x SRPO's 5e-6 (LoRA's usual factor over full fine-tuning); LORA_RANK / LORA_ALPHA change the adapter.
# vLLM loads the base from MODEL_PATH (load_format=safetensors) and receives the adapter each step (verl's LoRA sync).
#
#   TASK=chemistry bash recipes/qwen3_8b/run_srpo_lora.sh
#   TASK=physics DRY_RUN=1 bash recipes/qwen3_8b/run_srpo_lora.sh   # print the resolved config only
set -xeuo pipefail

METHOD=srpo
RUN_NAME=srpo_lora
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
LORA_RANK=${LORA_RANK:-64}
LORA_ALPHA=${LORA_ALPHA:-64}

# shellcheck source-path=SCRIPTDIR source=../common/launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/launch.sh"

srpo_run "${PYTHON}" -m srpo_verl.main "${DRY_RUN_ARGS[@]}" --config-name srpo_trainer \
    "srpo.method=${METHOD}" \
    "data.train_files=${DATA_DIR}/${TASK}/train.parquet" \
    "data.val_files=${DATA_DIR}/${TASK}/test.parquet" \
    "actor_rollout_ref.model.path=${MODEL_PATH}" \
    actor_rollout_ref.actor.kl_loss_coef=0.0 \
    "actor_rollout_ref.model.lora_rank=${LORA_RANK}" \
    "actor_rollout_ref.model.lora_alpha=${LORA_ALPHA}" \
    actor_rollout_ref.model.target_modules=all-linear \
    actor_rollout_ref.actor.optim.lr=5e-5 \
    actor_rollout_ref.rollout.load_format=safetensors \
    actor_rollout_ref.rollout.layered_summon=True \
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
