#!/usr/bin/env bash
# Create (or refresh) .venv in the repository and install torch, verl 0.9.1 and srpo_verl (editable).
#
# Idempotent: a ready environment is detected by a stamp that hashes setup.py and this script, so a second
# run takes seconds. Knobs:
#   TORCH_SPEC   torch requirement (default torch==2.13.0, the CPU build on these machines; on a GPU host use
#                e.g. TORCH_SPEC=torch==2.8.0 TORCH_INDEX=https://download.pytorch.org/whl/cu128)
#   TORCH_INDEX  extra index for torch (default: none)
#   EXTRAS       package extras (default: test; a GPU host may add gpu: EXTRAS=test,gpu)
#   VENV         venv path (default: <repo>/.venv)
#   PYTHON       interpreter to create the venv with (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV=${VENV:-"$ROOT/.venv"}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX=${TORCH_INDEX:-}
EXTRAS=${EXTRAS:-test}

# pip on some hosts warns once per package about configured local indexes that do not exist: drop that noise only.
pip_quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

stamp_key() {
    { cat "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh"; echo "$TORCH_SPEC|$TORCH_INDEX|$EXTRAS"; } | sha256sum | cut -c1-16
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
echo "[setup_env] installing $TORCH_SPEC"
if [[ -n "$TORCH_INDEX" ]]; then
    "${PIP[@]}" install "$TORCH_SPEC" --extra-index-url "$TORCH_INDEX"
else
    "${PIP[@]}" install "$TORCH_SPEC"
fi
TORCH_VERSION=$("$VENV/bin/python" -c "import torch; print(torch.__version__)")

# The constraint keeps pip from swapping the torch build just installed. verl goes in first, on its own: resolving
# it together with the package's extras sends pip's resolver into long backtracking.
CONSTRAINT=$(mktemp)
trap 'rm -f "$CONSTRAINT"' EXIT
echo "torch==${TORCH_VERSION}" > "$CONSTRAINT"
VERL_SPEC=$(sed -n 's/^VERL_VERSION = "\(.*\)"$/verl[verl-core]==\1/p' "$ROOT/setup.py")
echo "[setup_env] installing $VERL_SPEC"
"${PIP[@]}" install -c "$CONSTRAINT" "$VERL_SPEC"
echo "[setup_env] installing srpo_verl[$EXTRAS] (editable)"
"${PIP[@]}" install -c "$CONSTRAINT" -e "${ROOT}[${EXTRAS}]"

"$VENV/bin/python" - <<'PY'
import torch, verl, srpo_verl
print(f"[setup_env] torch {torch.__version__} (cuda={torch.cuda.is_available()}), verl {verl.__version__}, srpo_verl {srpo_verl.__version__}")
PY
touch "$STAMP"
echo "[setup_env] environment ready: $VENV"
