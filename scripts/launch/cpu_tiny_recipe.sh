#!/usr/bin/env bash
# A CPU recipe for the launcher: the tiny synthetic task (python -m srpo_verl.tiny.build --out DIR) on the CPU
# backend, for trying a cluster (or the launcher itself) without GPUs. The launcher's multi-node test submits it:
#
#   MODEL_PATH=DIR/model DATA_DIR=DIR/data NNODES=2 GPUS_PER_NODE=1 \
#       bash scripts/launch/ray_cluster.sh submit scripts/launch/cpu_tiny_recipe.sh trainer.total_training_steps=2
#
# Run directly (no RAY_ADDRESS) it starts a local Ray as the CPU e2e tests do. Inside a Ray job (or with RAY_ADDRESS
# set) it joins the running cluster: Ray refuses num_cpus / num_gpus in a ray.init() that joins one, so the CPU
# overlay's ray_kwargs.ray_init.num_cpus / num_gpus are removed; the nodes' `ray start --num-cpus / --num-gpus` set them.
# SRPO_VERL_CPU=1 travels in ray_init's runtime_env (quoted: a string, Ray refuses other env values), since the
# workers of other nodes do not inherit this shell.
set -xeuo pipefail

MODEL_PATH=${MODEL_PATH:?set MODEL_PATH to the tiny model folder (python -m srpo_verl.tiny.build --out DIR: DIR/model)}
DATA_DIR=${DATA_DIR:?set DATA_DIR to the folder holding train.parquet and test.parquet (DIR/data)}
METHOD=${METHOD:-srpo}                   # srpo.method
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-1}        # logical GPUs: one FSDP rank (and one hf rollout replica) each
STEPS=${STEPS:-2}
CKPT_DIR=${CKPT_DIR:-$(pwd)/checkpoints}
RUNS_DIR=${RUNS_DIR:-$(pwd)/runs}
PYTHON=${PYTHON:-python3}
WORLD=$((NNODES * GPUS_PER_NODE))
# cpu_srpo's 8 prompts x 4 rollouts = 32 samples per step, split over the ranks; without dynamic batching verl cuts
# each rank's share into micro-batches of exactly this size, so it must divide 32 / WORLD (the start-up check says so)
MICRO_BATCH=${MICRO_BATCH:-$((32 / WORLD))}

export SRPO_VERL_CPU=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=offline HYDRA_FULL_ERROR=1

for split in train test; do
    if [[ ! -f "${DATA_DIR}/${split}.parquet" ]]; then
        echo "error: ${DATA_DIR}/${split}.parquet not found; build the tiny assets (python -m srpo_verl.tiny.build --out DIR)" >&2
        exit 2
    fi
done

join_cluster=()
if [[ -n "${RAY_ADDRESS:-}" || -n "${RAY_JOB_CONFIG_JSON_ENV_VAR:-}" ]]; then
    join_cluster=("~ray_kwargs.ray_init.num_cpus" "~ray_kwargs.ray_init.num_gpus")
fi

run_dir="${RUNS_DIR}/cpu_tiny/${METHOD}"
mkdir -p "${run_dir}"
"${PYTHON}" -m srpo_verl.main --config-name cpu_srpo \
    "srpo.method=${METHOD}" \
    "data.train_files=${DATA_DIR}/train.parquet" \
    "data.val_files=${DATA_DIR}/test.parquet" \
    "actor_rollout_ref.model.path=${MODEL_PATH}" \
    "trainer.nnodes=${NNODES}" \
    "trainer.n_gpus_per_node=${GPUS_PER_NODE}" \
    "trainer.total_training_steps=${STEPS}" \
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=${MICRO_BATCH}" \
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=${MICRO_BATCH}" \
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=${MICRO_BATCH}" \
    "trainer.default_local_dir=${CKPT_DIR}/cpu_tiny/${METHOD}" \
    "hydra.run.dir=${run_dir}/hydra" \
    "++ray_kwargs.ray_init.runtime_env.env_vars.SRPO_VERL_CPU='1'" \
    "${join_cluster[@]}" \
    "$@"
