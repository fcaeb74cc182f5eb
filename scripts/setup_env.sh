#!/usr/bin/env bash
# Create (or refresh) .venv in the repository and install torch, verl 0.9.1 and srpo_verl (editable).
#
# Idempotent: a ready environment is detected by a stamp that hashes setup.py, srpo_verl/gpu_stack.py (+ its engine
# snapshot) and this script, so a second run takes seconds. Knobs:
#   ENGINE       none (default: the CPU set-up), vllm or sglang: verl 0.9.1's GPU stack for that rollout engine,
#                with the versions of srpo_verl/gpu_stack.py (CUDA 13 torch from the PyTorch cu130 index)
#   FLASH_ATTN   with an ENGINE: none (default), source (pip compiles the PyPI source distribution: needs nvcc and
#                a while), or the path / URL of a prebuilt wheel for this torch / CUDA / Python (docs/INSTALL.md)
#   TORCH_SPEC   torch requirement(s) (default: torch==2.13.0, the CPU build on these machines; with an ENGINE, the
#                pinned torch / torchvision / torchaudio)
#   TORCH_INDEX  extra index for torch (default: none; with an ENGINE, the PyTorch cu130 index; set it empty to take
#                PyPI's Linux x86-64 wheels of that torch, which are CUDA 13 builds too)
#   EXTRAS       package extras (default: test; with an ENGINE, test,<ENGINE>)
#   VENV         venv path (default: <repo>/.venv)
#   PYTHON       interpreter to create the venv with (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV=${VENV:-"$ROOT/.venv"}
PYTHON=${PYTHON:-python3}
ENGINE=${ENGINE:-none}
FLASH_ATTN=${FLASH_ATTN:-none}
GPU_STACK=("$PYTHON" "$ROOT/srpo_verl/gpu_stack.py")
case "$ENGINE" in
    none)
        TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
        TORCH_INDEX=${TORCH_INDEX:-}
        EXTRAS=${EXTRAS:-test} ;;
    vllm|sglang)
        TORCH_SPEC=${TORCH_SPEC:-$("${GPU_STACK[@]}" torch-spec)}
        TORCH_INDEX=${TORCH_INDEX-$("${GPU_STACK[@]}" torch-index)}   # TORCH_INDEX= (empty): PyPI's CUDA 13 wheels
        EXTRAS=${EXTRAS:-test,$ENGINE} ;;
    *)
        echo "[setup_env] ENGINE=$ENGINE: expected none, vllm or sglang" >&2
        exit 2 ;;
esac
if [[ "$ENGINE" == none && "$FLASH_ATTN" != none ]]; then
    echo "[setup_env] FLASH_ATTN=$FLASH_ATTN needs ENGINE=vllm or ENGINE=sglang (a CUDA torch)" >&2
    exit 2
fi

# pip on some hosts warns once per package about configured local indexes that do not exist: drop that noise only.
pip_quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

stamp_key() {
    { cat "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh" "$ROOT/srpo_verl/gpu_stack.py" \
          "$ROOT/srpo_verl/gpu_engine_requirements.json"
      echo "$TORCH_SPEC|$TORCH_INDEX|$EXTRAS|$ENGINE|$FLASH_ATTN"; } | sha256sum | cut -c1-16
}
STAMP="$VENV/.srpo_verl_env_$(stamp_key)"

# The stamp plus a presence check (find_spec: ~0.1 s; importing verl would take ~10 s on every test or quickstart run).
ready_check='import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ("torch", "verl", "srpo_verl")) else 1)'
if [[ -f "$STAMP" ]] && "$VENV/bin/python" -c "$ready_check" >/dev/null 2>&1; then
    echo "[setup_env] environment ready: $VENV"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[setup_env] creating $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
PIP=(pip_quiet "$VENV/bin/python" -m pip --disable-pip-version-check -q)
rm -f "$VENV"/.srpo_verl_env_*

# torch first: verl's base requirements leave torch free, so an already-installed build is kept.
echo "[setup_env] installing $TORCH_SPEC${TORCH_INDEX:+ (index $TORCH_INDEX)}"
read -r -a TORCH_REQS <<< "$TORCH_SPEC"
if [[ -n "$TORCH_INDEX" ]]; then
    "${PIP[@]}" install "${TORCH_REQS[@]}" --extra-index-url "$TORCH_INDEX"
else
    "${PIP[@]}" install "${TORCH_REQS[@]}"
fi
# from the metadata: importing torch before numpy is installed prints "Failed to initialize NumPy"
TORCH_VERSION=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('torch'))")

# The constraint keeps pip from swapping the torch build just installed. verl goes in first, on its own: resolving
# it together with the package's extras sends pip's resolver into long backtracking.
CONSTRAINT=$(mktemp)
trap 'rm -f "$CONSTRAINT"' EXIT
echo "torch==${TORCH_VERSION}" > "$CONSTRAINT"
if [[ "$ENGINE" != none ]]; then
    # the whole pinned stack (torchvision, torchaudio, the engine, transformers, flash-attn) is held the same way
    "${GPU_STACK[@]}" constraints "$ENGINE" | grep -v '^torch==' >> "$CONSTRAINT"
fi
VERL_SPEC=$(sed -n 's/^VERL_VERSION = "\(.*\)"$/verl[verl-core]==\1/p' "$ROOT/setup.py")
echo "[setup_env] installing $VERL_SPEC"
"${PIP[@]}" install -c "$CONSTRAINT" "$VERL_SPEC"
echo "[setup_env] installing srpo_verl[$EXTRAS] (editable)"
"${PIP[@]}" install -c "$CONSTRAINT" -e "${ROOT}[${EXTRAS}]"

if [[ "$ENGINE" == sglang ]]; then
    # sglang's metadata pins transformers==5.6.0, which verl 0.9.1 excludes (srpo_verl/gpu_stack.py,
    # ENGINE_OVERRIDES): sglang goes in without its dependencies, then its other requirements.
    SGLANG_SPEC=$("${GPU_STACK[@]}" constraints sglang | grep '^sglang==')
    DEPS=$(mktemp)
    "${GPU_STACK[@]}" engine-deps sglang > "$DEPS"
    echo "[setup_env] installing $SGLANG_SPEC --no-deps and its $(wc -l < "$DEPS") other requirements"
    "${PIP[@]}" install -c "$CONSTRAINT" -r "$DEPS"
    "${PIP[@]}" install -c "$CONSTRAINT" --no-deps "$SGLANG_SPEC"
    rm -f "$DEPS"
fi

case "$FLASH_ATTN" in
    none) ;;
    source)
        echo "[setup_env] compiling $("${GPU_STACK[@]}" flash-attn) from source (nvcc; MAX_JOBS=${MAX_JOBS:-unset})"
        "${PIP[@]}" install -c "$CONSTRAINT" --no-build-isolation "$("${GPU_STACK[@]}" flash-attn)" ;;
    *)
        echo "[setup_env] installing flash-attn from $FLASH_ATTN"
        "${PIP[@]}" install -c "$CONSTRAINT" --no-deps "$FLASH_ATTN" ;;
esac

"$VENV/bin/python" - <<'PY'
import torch, verl, srpo_verl
print(f"[setup_env] torch {torch.__version__} (cuda={torch.cuda.is_available()}), verl {verl.__version__}, srpo_verl {srpo_verl.__version__}")
PY
touch "$STAMP"
echo "[setup_env] environment ready: $VENV"
