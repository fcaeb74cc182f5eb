#!/usr/bin/env bash
# verl's real trainer with srpo_verl on one CUDA GPU, end to end (issue 14; docs/GPU_E2E.md): verl's CUDA platform,
# NCCL with world size 1, FSDP2 with bf16 mixed precision, the fused Triton log-prob kernels inside the trainer,
# the fp32 EMA teacher, the `hf` rollout on the GPU, the tiny Qwen3 task. Made for a machine with torch + CUDA and
# no network (the lent H200): what it lacks travels as wheels, in parts that fit one call each.
#
#   bash scripts/gpu_e2e.sh prepare        # HERE (networked): wheel parts, tiny assets, flash_attn stub in .gpu_e2e/
#   bash scripts/gpu_e2e.sh stage PART     # THERE, calls 1..N-1 (each carrying one part): keep the part in $WORK
#   bash scripts/gpu_e2e.sh run [PART]     # THERE, last call: stage, assemble + verify, install, runs, tarball
#   bash scripts/gpu_e2e.sh configs [ASSETS [LOGS]]   # anywhere srpo_verl imports: compose every run's config
#   TRITON_INTERPRET=1 bash scripts/gpu_e2e.sh check-flash-ce   # the stub's Triton cross-entropy against PyTorch
#
# `run` on a machine without CUDA is the dry run: it stages, checks every hash, installs, imports verl / ray / hydra /
# srpo_verl, composes every run's config, and stops with exit 3 and one line saying CUDA is needed from there on.
#
# Knobs: PYTHON (python3), WORK (/tmp/srpo_gpu_e2e: staging, install, runs), OUT (where the tarball goes; the device
# tool sets it), ASSETS (.gpu_e2e/assets: the tiny model and task), BUDGET_S (540: no run starts once less than its
# estimate is left), RUNS (all, in priority order: srpo resume flash_ce sdpo grpo), PART_SIZE (56M), PRESENT
# (scripts/wheelhouse/h200_present.txt), VENV (the project venv whose `pip freeze` is the wheel set: .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python3}
WORK=${WORK:-/tmp/srpo_gpu_e2e}
PREP="$ROOT/.gpu_e2e"
BUDGET_S=${BUDGET_S:-540}
RUNS=${RUNS:-srpo resume flash_ce sdpo grpo}
STARTED=$SECONDS

say() { echo "[gpu_e2e] $*" >&2; }
die() { echo "[gpu_e2e] error: $*" >&2; exit 2; }

# ---- here: the carried files ------------------------------------------------------------------------------------
prepare() {
    local venv=${VENV:-$ROOT/.venv} present=${PRESENT:-$ROOT/scripts/wheelhouse/h200_present.txt}
    [[ -x "$venv/bin/python" ]] || die "prepare: no project venv at $venv (bash scripts/setup_env.sh)"
    mkdir -p "$ROOT/.git/info" "$PREP"
    grep -qx '/.gpu_e2e/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.gpu_e2e/' >> "$ROOT/.git/info/exclude"
    # 1. the wheel set: the project venv minus the image's packages, for CPython 3.12 manylinux x86-64
    "$venv/bin/python" -m pip freeze --exclude-editable > "$PREP/freeze.txt"
    rm -rf "$PREP/wheelhouse"
    PYTHON="$venv/bin/python" bash "$ROOT/scripts/offline_wheelhouse.sh" build --requirements "$PREP/freeze.txt" \
        --present "$present" --python-version 3.12 --out "$PREP/wheelhouse" --part-size "${PART_SIZE:-56M}"
    # 2. the tiny Qwen3 model and task (built here: minutes of CPU that the GPU machine need not spend)
    [[ -f "$PREP/assets/model/config.json" ]] || "$venv/bin/python" -m srpo_verl.tiny.build --out "$PREP/assets"
    # 3. flash_attn holding only ops/triton/cross_entropy.py of the flash-attn source distribution (pip unpacks it
    #    before it fails to prepare the package's metadata without CUDA; --no-clean keeps the unpacked tree)
    if [[ ! -f "$PREP/flash_attn_stub/flash_attn/ops/triton/cross_entropy.py" ]]; then
        local tmp version
        tmp=$(mktemp -d)
        version=$("$venv/bin/python" "$ROOT/srpo_verl/gpu_stack.py" flash-attn)
        TMPDIR=$tmp timeout 120 "$venv/bin/python" -m pip download -q --no-deps --no-binary :all: --no-clean \
            --no-build-isolation -d "$tmp/dl" "$version" > /dev/null 2>&1 || true
        local source
        source=$(find "$tmp" -path '*/flash_attn/ops/triton/cross_entropy.py' | head -1)
        [[ -n "$source" ]] || die "prepare: could not unpack $version's source distribution"
        grep -qx "Version: ${version#*==}" "$(dirname "$source")/../../../PKG-INFO" \
            || die "prepare: $source is not from $version"
        mkdir -p "$PREP/flash_attn_stub/flash_attn/ops/triton"
        cp "$source" "$PREP/flash_attn_stub/flash_attn/ops/triton/cross_entropy.py"
        for init in flash_attn flash_attn/ops flash_attn/ops/triton; do
            echo "# stub: only flash-attn's Triton cross-entropy (scripts/gpu_e2e.sh prepare)" \
                > "$PREP/flash_attn_stub/$init/__init__.py"
        done
        echo "__version__ = \"${version#*==}\"" >> "$PREP/flash_attn_stub/flash_attn/__init__.py"
        rm -rf "$tmp"
    fi
    local parts=("$PREP"/wheelhouse/parts/part-*) last
    last=${parts[-1]#"$ROOT/"}
    say "ready: ${#parts[@]} parts ($(du -sh "$PREP/wheelhouse/parts" | cut -f1)), assets, flash_attn stub; device calls:"
    local part
    for part in "${parts[@]::${#parts[@]}-1}"; do
        part=${part#"$ROOT/"}
        echo "  run(carry=[\"$part\"], command=\"bash scripts/gpu_e2e.sh stage $part\")"
    done
    echo "  run(carry=[\"$last\", \".gpu_e2e/assets\", \".gpu_e2e/flash_attn_stub\"], command=\"bash scripts/gpu_e2e.sh run $last\", timeout_s=600)"
}

# ---- there: staging, install --------------------------------------------------------------------------------------
stage() {
    local part
    mkdir -p "$WORK/stage"
    for part in "$@"; do
        [[ -d "$part" ]] || die "stage: $part is not a directory"
        cp -f "$part"/* "$WORK/stage/"
        say "staged $part ($(du -sh "$part" | cut -f1)); $WORK/stage holds $(find "$WORK/stage" -type f | wc -l) files"
    done
}

install_set() {
    local lock="$WORK/stage/wheelhouse.lock" site="$WORK/site"
    [[ -f "$lock" ]] || die "no $lock: stage part-001 first (bash scripts/gpu_e2e.sh stage .gpu_e2e/wheelhouse/parts/part-001)"
    local key
    key=$(cat "$lock" "$ROOT/setup.py" "$ROOT/srpo_verl/__init__.py" | sha256sum | cut -c1-16)
    if [[ ! -f "$site/.installed_$key" ]]; then
        bash "$ROOT/scripts/offline_wheelhouse.sh" assemble --lock "$lock" --out "$WORK/wheels" "$WORK/stage"
        rm -rf "$site"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --find-links "$WORK/wheels" -r "$lock" \
            --target "$site"
        # srpo_verl itself, so that verl finds its `verl.plugins` entry point (the image's setuptools builds it, from a
        # copy: an in-tree build would write build/ and *.egg-info into the checkout)
        rm -rf "$WORK/src" "$WORK/own"
        mkdir -p "$WORK/src"
        cp -r "$ROOT/setup.py" "$ROOT/README.md" "$ROOT/srpo_verl" "$WORK/src/"
        "$PYTHON" -m pip wheel -q --no-deps --no-index --no-build-isolation -w "$WORK/own" "$WORK/src"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$WORK"/own/srpo_verl-*.whl
        touch "$site/.installed_$key"
    fi
    export PYTHONPATH="$site" PATH="$site/bin:$PATH"
    "$PYTHON" - <<'PY'
import importlib.metadata as md
import sys
# the imports are the check: what the driver and the workers import, in the order a run imports them
import hydra, ray, tensordict, torch, transformers, transfer_queue, verl  # noqa: F401
import srpo_verl.main  # noqa: F401
from verl.trainer.main_ppo import TaskRunnerV1, run_ppo  # noqa: F401
from srpo_verl.verl_ext.registration import assert_registered
assert_registered(where="driver")
import srpo_verl.rollout.hf.server, srpo_verl.verl_ext.worker  # noqa: F401,E401
import verl.utils.dataset.rl_dataset, verl.workers.engine.fsdp.transformer_impl  # noqa: F401,E401
eps = [e.value for e in md.entry_points(group="verl.plugins")]
assert "srpo_verl.plugin" in eps, f"srpo_verl's verl.plugins entry point is missing: {eps}"
versions = {n: md.version(n) for n in ("torch", "triton", "transformers", "tokenizers", "verl", "ray", "hydra-core",
                                       "tensordict", "TransferQueue", "numpy", "srpo_verl")}
print("[gpu_e2e] python", sys.version.split()[0], "|", ", ".join(f"{k} {v}" for k, v in versions.items()))
PY
}

# ---- the runs -------------------------------------------------------------------------------------------------
# One config for every run: srpo_trainer (the paper's SRPO deltas on verl's ppo_trainer) sized for the tiny task.
common_overrides() {
    local assets=$1
    cat <<EOF
data.train_files=$assets/data/train.parquet
data.val_files=$assets/data/test.parquet
actor_rollout_ref.model.path=$assets/model
data.train_batch_size=8
data.max_prompt_length=64
data.max_response_length=16
data.filter_overlong_prompts=false
data.truncation=error
data.dataloader_num_workers=0
actor_rollout_ref.model.use_remove_padding=false
++actor_rollout_ref.model.override_config.attn_implementation=sdpa
actor_rollout_ref.model.enable_gradient_checkpointing=false
actor_rollout_ref.actor.strategy=fsdp2
actor_rollout_ref.actor.use_torch_compile=false
actor_rollout_ref.actor.fsdp_config.use_torch_compile=false
actor_rollout_ref.ref.fsdp_config.use_torch_compile=false
actor_rollout_ref.ref.strategy=fsdp2
++actor_rollout_ref.actor.fsdp_config.mixed_precision={param_dtype:bf16,reduce_dtype:fp32,buffer_dtype:fp32}
actor_rollout_ref.ref.fsdp_config.model_dtype=fp32
actor_rollout_ref.actor.optim.lr=1e-3
actor_rollout_ref.actor.optim.lr_warmup_steps=0
actor_rollout_ref.actor.ppo_mini_batch_size=8
actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32
actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=32
actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=32
actor_rollout_ref.rollout.name=hf
actor_rollout_ref.rollout.mode=async
actor_rollout_ref.rollout.dtype=bfloat16
actor_rollout_ref.rollout.tensor_model_parallel_size=1
actor_rollout_ref.rollout.n=4
actor_rollout_ref.rollout.full_determinism=true
actor_rollout_ref.rollout.agent.num_workers=1
actor_rollout_ref.rollout.val_kwargs.n=1
actor_rollout_ref.rollout.val_kwargs.do_sample=false
reward.num_workers=1
srpo.topk=8
srpo.max_reprompt_len=256
srpo.logits_chunk_size=256
srpo.logits_backend=triton
trainer.device=cuda
trainer.n_gpus_per_node=1
trainer.nnodes=1
trainer.logger=[console]
trainer.val_before_train=false
trainer.test_freq=-1
transfer_queue.backend.SimpleStorage.num_data_storage_units=1
EOF
}

# name|estimate_s|env|overrides (space-separated); in priority order. `resume` runs on a copy of srpo's step-2 ckpt.
run_table() {
    cat <<'EOF'
srpo|150|VERL_DISABLE_FLASH_ATTN_CE=1|srpo.method=srpo trainer.total_training_steps=3 trainer.save_freq=1 trainer.resume_mode=disable
resume|110|VERL_DISABLE_FLASH_ATTN_CE=1|srpo.method=srpo trainer.total_training_steps=3 trainer.save_freq=1 trainer.resume_mode=auto
flash_ce|100|VERL_DISABLE_FLASH_ATTN_CE=0 FLASH_CE=1|srpo.method=srpo trainer.total_training_steps=1 trainer.save_freq=-1 trainer.resume_mode=disable
sdpo|100||srpo.method=sdpo trainer.total_training_steps=1 trainer.save_freq=-1 trainer.resume_mode=disable
grpo|110||srpo.method=grpo trainer.total_training_steps=2 trainer.save_freq=-1 trainer.resume_mode=disable
verl_grpo|110||~srpo trainer.v1.trainer_mode=sync trainer.total_training_steps=2 trainer.save_freq=-1 trainer.resume_mode=disable
EOF
}

# argv of one run (the config composition is checked with the same argv plus `--cfg job`)
run_argv() {
    local name=$1 overrides=$2 dir=$3 assets=$4
    local -a argv=(-m srpo_verl.main --config-name srpo_trainer)
    mapfile -t -O "${#argv[@]}" argv < <(common_overrides "$assets")
    read -r -a extra <<< "$overrides"
    argv+=("${extra[@]}" "trainer.experiment_name=gpu_e2e_$name" "trainer.default_local_dir=$dir/ckpt"
           "trainer.rollout_data_dir=$dir/rollouts" "hydra.run.dir=$dir/hydra")
    [[ "$name" == verl_grpo ]] || argv+=("srpo.route_dump_dir=$dir/routes")
    printf '%s\n' "${argv[@]}"
}

selected() {  # the run names RUNS asks for (grpo brings verl_grpo, its reference)
    local row name
    while IFS='|' read -r name _; do
        for row in $RUNS; do
            if [[ "$row" == all || "$row" == "$name" || ("$row" == grpo && "$name" == verl_grpo) ]]; then
                echo "$name"; break
            fi
        done
    done < <(run_table)
}

# every selected run's config composes (`--cfg job`: Hydra only, no verl run; cheap, and the dry run's check of
# the commands). Writes LOGS/config_<run>.yaml.
compose_configs() {
    local assets=$1 runs=$2 logs=$3 name estimate envs overrides
    mkdir -p "$logs"
    while IFS='|' read -r name estimate envs overrides; do
        grep -qx "$name" <(selected) || continue
        local -a argv
        mapfile -t argv < <(run_argv "$name" "$overrides" "$runs/$name" "$assets")
        "$PYTHON" "${argv[@]}" --cfg job > "$logs/config_$name.yaml" 2> "$logs/config_$name.err" \
            || { cat "$logs/config_$name.err" >&2; die "the $name run's config does not compose (above)"; }
    done < <(run_table)
    say "configs compose: $(selected | tr '\n' ' ')"
}

# flash-attn's Triton cross-entropy from the stub against PyTorch (forward = verl's -log p, and the gradient): on
# CPU under TRITON_INTERPRET=1 (the check that it compiles under this Triton), on CUDA as it will run in the trainer.
check_flash_ce() {
    local stub="$PREP/flash_attn_stub"
    [[ -f "$stub/flash_attn/ops/triton/cross_entropy.py" ]] || die "no flash_attn stub at $stub (prepare)"
    PYTHONPATH="$stub${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - <<'PY'
import os
import torch
import triton
from flash_attn.ops.triton.cross_entropy import cross_entropy_loss

device = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
if device == "cpu":  # the wrapper enters torch.cuda.device(logits.device.index); a CPU tensor has no index
    import contextlib
    torch.cuda.device = lambda index: contextlib.nullcontext()
torch.manual_seed(0)
logits = (3 * torch.randn(6, 1000, dtype=torch.float32, device=device)).requires_grad_()
labels = torch.randint(0, 1000, (6,), device=device)
loss, _ = cross_entropy_loss(logits, labels, inplace_backward=False)
(grad,) = torch.autograd.grad(loss.sum(), logits)
ref_logits = logits.detach().clone().requires_grad_()
ref = torch.nn.functional.cross_entropy(ref_logits, labels, reduction="none")
(ref_grad,) = torch.autograd.grad(ref.sum(), ref_logits)
loss_err, grad_err = (loss - ref).abs().max().item(), (grad - ref_grad).abs().max().item()
print(f"[gpu_e2e] flash-attn cross_entropy on {device} (triton {triton.__version__}, interpret="
      f"{os.environ.get('TRITON_INTERPRET', '0')}): max |loss - torch| {loss_err:.2e}, max |grad - torch| {grad_err:.2e}")
assert loss_err < 1e-4 and grad_err < 1e-5, (loss_err, grad_err)
PY
}

run_all() {
    local assets=${ASSETS:-$PREP/assets} runs="$WORK/runs" logs="$WORK/logs"
    [[ -f "$assets/model/config.json" ]] || die "no tiny assets at $assets (carry .gpu_e2e/assets)"
    mkdir -p "$runs" "$logs"
    export WANDB_MODE=offline TOKENIZERS_PARALLELISM=false HYDRA_FULL_ERROR=1 RAY_DEDUP_LOGS=0 PYTHONUNBUFFERED=1
    export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
    unset SRPO_VERL_CPU
    compose_configs "$assets" "$runs" "$logs"
    local name estimate envs overrides

    # CUDA from here on
    if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "[gpu_e2e] CUDA is needed from here on: torch $("$PYTHON" -c 'import torch; print(torch.__version__)') sees no CUDA device (staging, hashes, install, imports and the run configs above are done)" >&2
        exit 3
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$logs/nvidia-smi.csv" 2>&1 || true
    "$PYTHON" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(), 'triton', triton.__version__)" \
        | tee "$logs/device.txt"

    local rc
    while IFS='|' read -r name estimate envs overrides; do
        grep -qx "$name" <(selected) || continue
        local left=$((BUDGET_S - (SECONDS - STARTED)))
        if ((left < estimate)); then
            say "$name: skipped, ${left}s of the ${BUDGET_S}s budget left (needs ~${estimate}s)"
            echo "skipped_budget" > "$runs/$name.rc"
            continue
        fi
        local dir="$runs/$name"
        rm -rf "$dir"; mkdir -p "$dir"
        if [[ "$name" == resume ]]; then
            [[ -d "$runs/srpo/ckpt/global_step_2" ]] || { say "resume: skipped, srpo left no step-2 checkpoint"; echo "skipped_no_ckpt" > "$runs/$name.rc"; continue; }
            mkdir -p "$dir/ckpt"
            cp -r "$runs/srpo/ckpt/global_step_2" "$dir/ckpt/"
            echo 2 > "$dir/ckpt/latest_checkpointed_iteration.txt"
        fi
        local -a argv env_args=()
        mapfile -t argv < <(run_argv "$name" "$overrides" "$dir" "$assets")
        read -r -a env_args <<< "$envs"
        local pythonpath=$PYTHONPATH
        if [[ " ${env_args[*]} " == *" FLASH_CE=1 "* ]]; then
            pythonpath="$PREP/flash_attn_stub:$PYTHONPATH"
            check_flash_ce > "$logs/flash_ce_check.txt" 2>&1 || { cat "$logs/flash_ce_check.txt" >&2; say "flash_ce: the kernel check failed; running anyway"; }
            PYTHONPATH=$pythonpath "$PYTHON" -c "import verl.utils.torch_functional as f; assert f.FLAH_ATTN_CROSS_ENTROPY_LOSS_AVAILABLE; print('[gpu_e2e] verl sees flash-attn cross_entropy_loss')" >> "$logs/flash_ce_check.txt" 2>&1 || true
        fi
        say "$name: starting (${left}s left): ${overrides}"
        local t0=$SECONDS
        set +e
        (cd "$dir" && env "${env_args[@]}" PYTHONPATH="$pythonpath" timeout $((left - 5)) "$PYTHON" "${argv[@]}") \
            > "$dir/run.log" 2>&1
        rc=$?
        set -e
        echo "$rc" > "$runs/$name.rc"
        echo "$((SECONDS - t0))" > "$runs/$name.wall_s"
        say "$name: exit $rc in $((SECONDS - t0)) s"
        ((rc == 0)) || tail -30 "$dir/run.log" >&2
    done < <(run_table)
    "$PYTHON" "$ROOT/scripts/gpu_e2e_summary.py" "$runs" > "$logs/summary.txt" || true
    cat "$logs/summary.txt"
}

pack() {
    local out=${OUT:-$WORK/out}
    mkdir -p "$out"
    # logs and metrics only (no checkpoints, no wheels): run logs, rollout / route dumps, configs, summary
    (cd "$WORK" && find logs runs -type f \( -name '*.log' -o -name '*.txt' -o -name '*.rc' -o -name '*.wall_s' \
        -o -name '*.jsonl' -o -name '*.yaml' -o -name '*.err' -o -name '*.csv' -o -name '*.json' \) \
        -not -path '*/ckpt/*' -print0 | tar czf "$out/gpu_e2e.tar.gz" --null -T -)
    cp "$WORK/logs/summary.txt" "$out/summary.txt" 2>/dev/null || true
    say "wrote $out/gpu_e2e.tar.gz ($(du -h "$out/gpu_e2e.tar.gz" | cut -f1))"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    check-flash-ce) shift; check_flash_ce ;;
    configs) shift; compose_configs "${1:-$PREP/assets}" "$WORK/runs" "${2:-$WORK/logs}" ;;
    stage) shift; (($#)) || die "stage: name the part directory"; stage "$@" ;;
    run)
        shift
        mkdir -p "$WORK/logs"
        exec > >(tee -a "$WORK/logs/gpu_e2e.log") 2>&1
        (($#)) && stage "$@"
        install_set
        set +e
        (run_all)
        rc=$?
        set -e
        ((rc == 3)) && exit 3
        pack
        exit "$rc" ;;
    *) echo "usage: $0 prepare | stage PART... | run [PART...] | configs [ASSETS [LOGS]] | check-flash-ce   (docs/GPU_E2E.md)" >&2; exit 2 ;;
esac
