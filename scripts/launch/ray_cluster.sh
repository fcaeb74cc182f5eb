#!/usr/bin/env bash
# Multi-node runs on a Ray cluster: start the head, start workers, submit a recipe as a Ray job, stop own nodes.
#
#   # on the head node
#   bash scripts/launch/ray_cluster.sh head
#   # on every other node (HEAD_IP = the head's address)
#   HEAD_IP=10.0.0.1 bash scripts/launch/ray_cluster.sh worker
#   # from any machine that reaches the head's dashboard port, from the repo root
#   HEAD_IP=10.0.0.1 NNODES=2 TASK=chemistry bash scripts/launch/ray_cluster.sh submit recipes/qwen3_8b/run_srpo.sh
#   HEAD_IP=10.0.0.1 bash scripts/launch/ray_cluster.sh status | logs <job id>
#   bash scripts/launch/ray_cluster.sh stop        # on each node: stops the nodes this script started there
#   bash scripts/launch/ray_cluster.sh node-ip     # the address `head` would advertise (see node_ip() below)
#   bash scripts/launch/ray_cluster.sh runtime-env # the runtime env `submit` would send (JSON)
#
# `head` and `worker` start `ray start` in a session of its own and record its process group under
# ${RAY_TEMP_DIR}/srpo_launcher/ (default temp dir: Ray's /tmp/ray); `stop` ends exactly those process groups
# (SIGTERM, then SIGKILL after STOP_TIMEOUT_S), leaving any other Ray of the machine alone. `stop-all` is `ray stop`,
# which kills every Ray process of the machine.
#
# `submit` ships this repository as the job's working_dir (Ray puts it on every worker's PYTHONPATH) and sets
# VERL_USE_EXTERNAL_MODULES=srpo_verl.plugin, so `import verl` registers srpo_verl on every node even where the
# package is not pip-installed (the docker image installs it; then the verl.plugins entry point does the same).
# It forwards the submitting shell's network variables to every Ray worker of the job: every NCCL_* variable that is
# set (NCCL_SOCKET_IFNAME, NCCL_IB_HCA, NCCL_IB_GID_INDEX, NCCL_DEBUG, ...), GLOO_SOCKET_IFNAME, TP_SOCKET_IFNAME,
# and the names listed in FORWARD_ENV. DATA_DIR, RUNS_DIR, CKPT_DIR and MODEL_PATH must be paths every node can read
# (a shared filesystem): the working_dir is unpacked into a temporary folder, so the defaults are made absolute on
# the submitting machine. Everything after the recipe path is passed to it (Hydra overrides).
set -xeuo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RAY=${RAY:-ray}                    # the ray CLI (e.g. .venv/bin/ray)
PYTHON=${PYTHON:-python3}          # builds the job's runtime-env JSON
HEAD_IP=${HEAD_IP:-127.0.0.1}
RAY_PORT=${RAY_PORT:-6379}         # the head's GCS port
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
RAY_TEMP_DIR=${RAY_TEMP_DIR:-}     # `ray start --temp-dir` (per node); empty: Ray's default /tmp/ray
NODE_IP=${NODE_IP:-}               # address this node advertises; empty: see node_ip() (head) / Ray's choice (worker)
NODE_IFNAME=${NODE_IFNAME:-}       # or: the interface whose IPv4 address to advertise (e.g. the cluster fabric's)
NUM_CPUS=${NUM_CPUS:-}             # `ray start --num-cpus` (logical CPUs); empty: Ray counts the cores
NNODES=${NNODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TASK=${TASK:-chemistry}
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
DATA_DIR=${DATA_DIR:-${REPO_ROOT}/data}
RUNS_DIR=${RUNS_DIR:-${REPO_ROOT}/runs}
CKPT_DIR=${CKPT_DIR:-${REPO_ROOT}/checkpoints}
RAY_START_ARGS=${RAY_START_ARGS:-}  # more `ray start` flags, word-split (fixed ports for a firewall, ...)
FORWARD_ENV=${FORWARD_ENV:-}       # more variable names (space-separated) to pass to the job's workers
BLOCK=${BLOCK:-0}                  # 1: `ray start --block` (keeps the process in the foreground, as SLURM needs)
NO_WAIT=${NO_WAIT:-0}              # 1: return once the job is submitted (follow it with `logs <job id>`)
STOP_TIMEOUT_S=${STOP_TIMEOUT_S:-20}

STATE_DIR=${RAY_TEMP_DIR:-/tmp/ray}/srpo_launcher

# Ray 2.60's `ray start --head` turns token authentication on by itself when RAY_AUTH_MODE is unset and a token
# exists; a worker, `ray job submit` or `ray status` does not, and is then refused ("Authentication token is missing").
# Do for every command what the head does (the token is never expanded here: `set -x` would print it).
if [[ -z "${RAY_AUTH_MODE:-}" ]] && [[ -n "${RAY_AUTH_TOKEN:+set}" || -f "${RAY_AUTH_TOKEN_PATH:-${HOME}/.ray/auth_token}" ]]; then
    export RAY_AUTH_MODE=token
fi

usage() {
    echo "usage: $0 head | worker | submit <recipe.sh> [hydra overrides...] | status | logs <job id> | stop | stop-all | node-ip | runtime-env" >&2
    exit 2
}

node_ip() {
    # NODE_IP, else NODE_IFNAME's IPv4 address, else the source address of the route to ROUTE_TO (an address of
    # another node), else the first global-scope IPv4 address. Never 127.x: `hostname --ip-address` can return
    # 127.0.1.1 (Debian's /etc/hosts), which no other node reaches.
    local ip=""
    if [[ -n "${NODE_IP}" ]]; then
        ip=${NODE_IP}
    elif [[ -n "${NODE_IFNAME}" ]]; then
        ip=$(ip -4 -o addr show dev "${NODE_IFNAME}" | awk '{split($4, a, "/"); print a[1]; exit}')
    elif [[ -n "${ROUTE_TO:-}" ]]; then
        ip=$(ip -4 -o route get "${ROUTE_TO}" | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}')
    else
        ip=$(ip -4 -o addr show scope global | awk '{split($4, a, "/"); print a[1]; exit}')
    fi
    if [[ -z "${ip}" || "${ip}" == 127.* ]]; then
        echo "error: no routable address for this node (got '${ip}'); set NODE_IP, NODE_IFNAME or ROUTE_TO" >&2
        return 2
    fi
    echo "${ip}"
}

start_node() {
    # `ray start` in a new session: its process group (= its pid) holds the GCS, raylet, dashboard and workers.
    local role=$1
    shift
    local flags=(--num-gpus="${GPUS_PER_NODE}")
    [[ -n "${NUM_CPUS}" ]] && flags+=(--num-cpus="${NUM_CPUS}")
    [[ -n "${RAY_TEMP_DIR}" ]] && flags+=(--temp-dir="${RAY_TEMP_DIR}")
    [[ "${BLOCK}" == "1" ]] && flags+=(--block)
    local extra=()
    read -r -a extra <<< "${RAY_START_ARGS}"
    flags+=("${extra[@]}")
    mkdir -p "${STATE_DIR}"
    setsid "${RAY}" start "$@" "${flags[@]}" &
    local pgid=$!
    echo "${pgid}" > "${STATE_DIR}/${role}-${pgid}.pgid"
    if [[ "${BLOCK}" == "1" ]]; then
        trap 'kill -TERM -- "-${pgid}" 2>/dev/null || true' TERM INT
    fi
    wait "${pgid}"
}

stop_own_nodes() {
    local files=() pgids=() file pgid waited=0
    shopt -s nullglob
    files=("${STATE_DIR}"/*.pgid)
    shopt -u nullglob
    if [[ ${#files[@]} -eq 0 ]]; then
        echo "no Ray node started by this script is recorded under ${STATE_DIR} (stop-all runs 'ray stop')" >&2
        return 0
    fi
    for file in "${files[@]}"; do
        pgid=$(<"${file}")
        pgids+=("${pgid}")
        kill -TERM -- "-${pgid}" 2>/dev/null || true
    done
    for pgid in "${pgids[@]}"; do
        while kill -0 -- "-${pgid}" 2>/dev/null && (( waited < STOP_TIMEOUT_S )); do
            sleep 1
            waited=$((waited + 1))
        done
        kill -KILL -- "-${pgid}" 2>/dev/null || true
    done
    rm -f "${files[@]}"
}

runtime_env_json() {
    # Large or machine-local folders stay out of the upload; they are read from the shared filesystem instead.
    REPO_ROOT="${REPO_ROOT}" FORWARD_ENV="${FORWARD_ENV}" "${PYTHON}" - <<'PY'
import json, os, re

forwarded = {name: value for name, value in os.environ.items()
             if name.startswith("NCCL_") or name in ("GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME")}
for name in os.environ["FORWARD_ENV"].split():
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"error: FORWARD_ENV entry {name!r} is not a variable name")
    if name not in os.environ:
        raise SystemExit(f"error: FORWARD_ENV names {name}, which is not set in this shell")
    forwarded[name] = os.environ[name]
env_vars = {**forwarded, "VERL_USE_EXTERNAL_MODULES": "srpo_verl.plugin", "TOKENIZERS_PARALLELISM": "false"}
print(json.dumps({
    "working_dir": os.environ["REPO_ROOT"],
    "excludes": ["/.git/", "/.venv/", "/data/", "/runs/", "/checkpoints/", "/outputs/", "*.parquet", "*.pt",
                 "*.safetensors"],
    "env_vars": env_vars,
}))
PY
}

command=${1:-}
[[ -n "${command}" ]] || usage
shift

case "${command}" in
    head)
        head_ip=$(node_ip)
        start_node head --head --node-ip-address="${head_ip}" --port="${RAY_PORT}" \
            --dashboard-host=0.0.0.0 --dashboard-port="${DASHBOARD_PORT}"
        ;;
    worker)
        ip_flag=()
        if [[ -n "${NODE_IP}" || -n "${NODE_IFNAME}" ]]; then
            ip_flag=(--node-ip-address="$(node_ip)")
        fi
        start_node worker --address="${HEAD_IP}:${RAY_PORT}" "${ip_flag[@]}"
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
        runtime_env=$(runtime_env_json)
        "${RAY}" job submit --address="http://${HEAD_IP}:${DASHBOARD_PORT}" --runtime-env-json="${runtime_env}" \
            "${wait_flag[@]}" -- \
            env NNODES="${NNODES}" GPUS_PER_NODE="${GPUS_PER_NODE}" TASK="${TASK}" ROLLOUT_ENGINE="${ROLLOUT_ENGINE}" \
            DATA_DIR="${DATA_DIR}" RUNS_DIR="${RUNS_DIR}" CKPT_DIR="${CKPT_DIR}" ${MODEL_PATH:+MODEL_PATH="${MODEL_PATH}"} \
            bash "${recipe}" "$@"
        ;;
    status)
        "${RAY}" status --address="${HEAD_IP}:${RAY_PORT}"
        "${RAY}" job list --address="http://${HEAD_IP}:${DASHBOARD_PORT}"
        ;;
    logs)
        [[ -n "${1:-}" ]] || usage
        "${RAY}" job logs --address="http://${HEAD_IP}:${DASHBOARD_PORT}" --follow "$1"
        ;;
    stop)
        stop_own_nodes
        ;;
    stop-all)
        "${RAY}" stop
        ;;
    node-ip)
        node_ip
        ;;
    runtime-env)
        runtime_env_json
        ;;
    *)
        usage
        ;;
esac
