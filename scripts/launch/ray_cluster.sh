#!/usr/bin/env bash
# Multi-node runs on a Ray cluster: start the head, start workers, submit a recipe as a Ray job.
#
#   # on the head node
#   bash scripts/launch/ray_cluster.sh head
#   # on every other node (HEAD_IP = the head's address)
#   HEAD_IP=10.0.0.1 bash scripts/launch/ray_cluster.sh worker
#   # from any machine that reaches the head's dashboard port, from the repo root
#   HEAD_IP=10.0.0.1 NNODES=2 TASK=chemistry bash scripts/launch/ray_cluster.sh submit recipes/qwen3_8b/run_srpo.sh
#   HEAD_IP=10.0.0.1 bash scripts/launch/ray_cluster.sh status | logs <job id> | stop
#
# `submit` ships this repository as the job's working_dir (Ray puts it on every worker's PYTHONPATH) and sets
# VERL_USE_EXTERNAL_MODULES=srpo_verl.plugin, so `import verl` registers srpo_verl on every node even where the
# package is not pip-installed (the docker image installs it; then the verl.plugins entry point does the same).
# DATA_DIR, RUNS_DIR, CKPT_DIR and MODEL_PATH must be paths every node can read (a shared filesystem): the
# working_dir is unpacked into a temporary folder, so the defaults are made absolute on the submitting machine.
# Everything after the recipe path is passed to it (Hydra overrides).
set -xeuo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HEAD_IP=${HEAD_IP:-127.0.0.1}
RAY_PORT=${RAY_PORT:-6379}
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
NNODES=${NNODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TASK=${TASK:-chemistry}
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
DATA_DIR=${DATA_DIR:-${REPO_ROOT}/data}
RUNS_DIR=${RUNS_DIR:-${REPO_ROOT}/runs}
CKPT_DIR=${CKPT_DIR:-${REPO_ROOT}/checkpoints}
BLOCK=${BLOCK:-0}                  # 1: `ray start --block` (keeps the process in the foreground, as SLURM needs)
NO_WAIT=${NO_WAIT:-0}              # 1: return once the job is submitted (follow it with `logs <job id>`)

usage() {
    echo "usage: $0 head | worker | submit <recipe.sh> [hydra overrides...] | status | logs <job id> | stop" >&2
    exit 2
}

block_flag=()
if [[ "${BLOCK}" == "1" ]]; then
    block_flag=(--block)
fi

runtime_env_json() {
    # Large or machine-local folders stay out of the upload; they are read from the shared filesystem instead.
    cat <<JSON
{"working_dir": "${REPO_ROOT}",
 "excludes": ["/.git/", "/.venv/", "/data/", "/runs/", "/checkpoints/", "/outputs/", "*.parquet", "*.pt",
              "*.safetensors"],
 "env_vars": {"VERL_USE_EXTERNAL_MODULES": "srpo_verl.plugin", "TOKENIZERS_PARALLELISM": "false"}}
JSON
}

command=${1:-}
[[ -n "${command}" ]] || usage
shift

case "${command}" in
    head)
        ray start --head --port="${RAY_PORT}" --dashboard-host=0.0.0.0 --dashboard-port="${DASHBOARD_PORT}" \
            --num-gpus="${GPUS_PER_NODE}" "${block_flag[@]}"
        ;;
    worker)
        ray start --address="${HEAD_IP}:${RAY_PORT}" --num-gpus="${GPUS_PER_NODE}" "${block_flag[@]}"
        ;;
    submit)
        recipe=${1:-}
        [[ -n "${recipe}" ]] || usage
        shift
        if [[ ! -f "${REPO_ROOT}/${recipe}" ]]; then
            echo "error: recipe ${recipe} not found under ${REPO_ROOT} (give it relative to the repo root)" >&2
            exit 2
        fi
        wait_flag=()
        if [[ "${NO_WAIT}" == "1" ]]; then
            wait_flag=(--no-wait)
        fi
        ray job submit --address="http://${HEAD_IP}:${DASHBOARD_PORT}" --runtime-env-json="$(runtime_env_json)" \
            "${wait_flag[@]}" -- \
            env NNODES="${NNODES}" GPUS_PER_NODE="${GPUS_PER_NODE}" TASK="${TASK}" ROLLOUT_ENGINE="${ROLLOUT_ENGINE}" \
            DATA_DIR="${DATA_DIR}" RUNS_DIR="${RUNS_DIR}" CKPT_DIR="${CKPT_DIR}" ${MODEL_PATH:+MODEL_PATH="${MODEL_PATH}"} \
            bash "${recipe}" "$@"
        ;;
    status)
        ray status --address="${HEAD_IP}:${RAY_PORT}"
        ray job list --address="http://${HEAD_IP}:${DASHBOARD_PORT}"
        ;;
    logs)
        [[ -n "${1:-}" ]] || usage
        ray job logs --address="http://${HEAD_IP}:${DASHBOARD_PORT}" --follow "$1"
        ;;
    stop)
        ray stop
        ;;
    *)
        usage
        ;;
esac
