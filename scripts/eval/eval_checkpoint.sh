#!/usr/bin/env bash
# avg@16 (and unbiased pass@k) of a model or a trained checkpoint on the test splits, with the paper's sampling
# (n=16, T=0.6, top-p 0.95) through verl's own validation loop (trainer.val_only) on the GPUs of this node.
#
#   CKPT=checkpoints/qwen3_8b/srpo/chemistry/global_step_450 TASKS=chemistry bash scripts/eval/eval_checkpoint.sh
#   MODEL_PATH=Qwen/Qwen3-8B EVAL_NAME=qwen3_8b-base bash scripts/eval/eval_checkpoint.sh     # the base rows
#
# CKPT is a verl checkpoint folder (global_step_N); its actor is merged to Hugging Face weights first with verl's
# model merger (python -m verl.model_merger merge --backend fsdp), into CKPT/actor/huggingface_merged. The EMA
# teacher (CKPT/teacher) is training state only and is not evaluated. Per task, the validation dump lands in
# ${EVAL_ROOT}/${EVAL_NAME}/<task>/val_generations/0.jsonl and the table is printed by score_generations.py.
# Arguments after the script are Hydra overrides for the validation run (e.g. actor_rollout_ref.rollout.n=...).
set -xeuo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CKPT=${CKPT:-}
MODEL_TAG=${MODEL_TAG:-qwen3_8b}                  # which recipes/<model_tag>/run_grpo.sh provides the settings
TASKS=${TASKS:-chemistry physics biology material tooluse}
EVAL_ROOT=${EVAL_ROOT:-${REPO_ROOT}/runs/eval}
PASS_K=${PASS_K:-1,4,8,16}
PYTHON=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}            # 1: print each task's resolved validation config; no merge, no run, no scores

if [[ -n "${CKPT}" ]]; then
    if [[ ! -d "${CKPT}/actor" ]]; then
        echo "error: ${CKPT}/actor not found; CKPT must be a verl checkpoint folder global_step_N" >&2
        exit 2
    fi
    MODEL_PATH="${CKPT}/actor/huggingface_merged"
    if [[ ! -f "${MODEL_PATH}/config.json" && "${DRY_RUN}" != "1" ]]; then
        "${PYTHON}" -m verl.model_merger merge --backend fsdp --local_dir "${CKPT}/actor" --target_dir "${MODEL_PATH}"
    fi
    EVAL_NAME=${EVAL_NAME:-$(basename "$(dirname "${CKPT}")")-$(basename "${CKPT}")}
else
    MODEL_PATH=${MODEL_PATH:?set CKPT (a global_step_N folder) or MODEL_PATH (a Hugging Face model)}
    EVAL_NAME=${EVAL_NAME:-$(basename "${MODEL_PATH}")}
fi
export MODEL_PATH DRY_RUN PYTHON

dumps=()
for task in ${TASKS}; do
    # The GRPO recipe builds no teacher, which validation does not need; the sampling settings are shared.
    TASK="${task}" RUN_DIR="${EVAL_ROOT}/${EVAL_NAME}/${task}" SAVE_FREQ=-1 \
        bash "${REPO_ROOT}/recipes/${MODEL_TAG}/run_grpo.sh" \
        trainer.val_only=True trainer.val_before_train=True trainer.resume_mode=disable \
        "trainer.experiment_name=eval-${EVAL_NAME}-${task}" "$@"
    dumps+=("${EVAL_ROOT}/${EVAL_NAME}/${task}/val_generations")
done

if [[ "${DRY_RUN}" == "1" ]]; then
    exit 0
fi
mkdir -p "${EVAL_ROOT}/${EVAL_NAME}"
"${PYTHON}" "${REPO_ROOT}/scripts/eval/score_generations.py" "${dumps[@]}" --k "${PASS_K}" --last \
    | tee "${EVAL_ROOT}/${EVAL_NAME}/scores.md"
