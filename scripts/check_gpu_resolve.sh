#!/usr/bin/env bash
# Networked check of the GPU install (manual: it downloads several GB, since pip's resolver reads each candidate's
# metadata from inside its wheel when the index does not serve it separately). CI runs the offline half,
# tests/unit/test_install_pins.py.
#   1. snapshot: downloads the pinned engine wheels (--no-deps), re-derives srpo_verl/gpu_engine_requirements.json
#      from their METADATA and fails if it differs from the committed one (UPDATE=1 rewrites it instead);
#   2. resolve (the engines of ENGINES): `pip install --dry-run --ignore-installed --report` of this package's GPU set for each engine, on this
#      interpreter, which must be CPython 3.12 on Linux x86-64 (the GPU target): ENGINE=vllm as `.[vllm]`;
#      ENGINE=sglang as `.[sglang]` + sglang's other requirements (sglang itself goes in with --no-deps);
#   3. with VERL_SGLANG=1, also shows that verl 0.9.1's own `verl[sglang]` extra cannot resolve (the reason for
#      the sglang override).
#   bash scripts/check_gpu_resolve.sh                 # PYTHON=python3.12 ENGINES="vllm sglang" WORK=<tmp dir>
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-python3.12}
ENGINES=${ENGINES:-vllm sglang}
WORK=${WORK:-$(mktemp -d)}
UPDATE=${UPDATE:-0}
VERL_SGLANG=${VERL_SGLANG:-0}
STACK=("$PYTHON" "$ROOT/srpo_verl/gpu_stack.py")

"$PYTHON" -c 'import sys, platform
ok = sys.version_info[:2] == (3, 12) and sys.platform == "linux" and platform.machine() == "x86_64"
sys.exit(0 if ok else f"check_gpu_resolve.sh resolves for the GPU target: run it with CPython 3.12 on Linux x86-64 (PYTHON=...), not {sys.version.split()[0]} {sys.platform} {platform.machine()}")'
mkdir -p "$WORK"
if [[ ! -x "$WORK/venv/bin/python" ]]; then
    "$PYTHON" -m venv "$WORK/venv"
    "$WORK/venv/bin/python" -m pip install -q --upgrade pip
fi
PIP=("$WORK/venv/bin/python" -m pip --disable-pip-version-check)
echo "[check_gpu_resolve] $("${PIP[@]}" --version), work dir $WORK"

# 1. the snapshot of the engines' own requirements (every engine, whatever ENGINES says: ~300 MB)
rm -rf "$WORK/engines"
for engine in $("$PYTHON" -c "import runpy; print(*runpy.run_path('$ROOT/srpo_verl/gpu_stack.py')['ENGINE_PINS'])"); do
    spec=$("${STACK[@]}" constraints "$engine" | grep "^$engine==")
    "${PIP[@]}" download -q --no-deps --only-binary=:all: -d "$WORK/engines" "$spec"
done
"${STACK[@]}" snapshot "$WORK"/engines/*.whl > "$WORK/snapshot.json"
if [[ "$UPDATE" == 1 ]]; then
    cp "$WORK/snapshot.json" "$ROOT/srpo_verl/gpu_engine_requirements.json"
    echo "[check_gpu_resolve] snapshot rewritten: srpo_verl/gpu_engine_requirements.json"
elif ! diff -u "$ROOT/srpo_verl/gpu_engine_requirements.json" "$WORK/snapshot.json"; then
    echo "[check_gpu_resolve] the engines' metadata differs from the committed snapshot (UPDATE=1 rewrites it)" >&2
    exit 1
else
    echo "[check_gpu_resolve] snapshot matches the engines' wheels"
fi

# 2. pip's resolver over each engine's full set
status=0
for engine in $ENGINES; do
    extra=()
    if [[ "$engine" == sglang ]]; then
        "${STACK[@]}" engine-deps sglang > "$WORK/sglang-deps.txt"
        extra=(-r "$WORK/sglang-deps.txt")
    fi
    started=$SECONDS
    if "${PIP[@]}" install -q --dry-run --ignore-installed --report "$WORK/report-$engine.json" \
            "${ROOT}[${engine}]" "${extra[@]}" > "$WORK/resolve-$engine.log" 2>&1; then
        "$WORK/venv/bin/python" - "$WORK/report-$engine.json" "$engine" <<'PY'
import json, sys
report, engine = json.load(open(sys.argv[1])), sys.argv[2]
versions = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in report["install"]}
keys = ("torch", "torchvision", "torchaudio", "vllm", "transformers", "tokenizers", "verl", "hydra-core", "ray", "triton")
print(f"[check_gpu_resolve] {engine}: resolves, {len(versions)} packages:",
      ", ".join(f"{k} {versions[k]}" for k in keys if k in versions))
PY
    else
        echo "[check_gpu_resolve] $engine: does NOT resolve (tail of $WORK/resolve-$engine.log):" >&2
        tail -20 "$WORK/resolve-$engine.log" >&2
        status=1
    fi
    echo "[check_gpu_resolve] $engine: $((SECONDS - started)) s"
done

# 3. verl's own sglang extra, as pip sees it
if [[ "$VERL_SGLANG" == 1 ]]; then
    verl=$("$PYTHON" -c "import runpy; print(runpy.run_path('$ROOT/srpo_verl/gpu_stack.py')['VERL_VERSION'])")
    if "${PIP[@]}" install -q --dry-run --ignore-installed "verl[sglang]==$verl" > "$WORK/resolve-verl-sglang.log" 2>&1
    then
        echo "[check_gpu_resolve] verl[sglang]==$verl now resolves: the sglang override may be obsolete" >&2
        status=1
    else
        echo "[check_gpu_resolve] verl[sglang]==$verl does not resolve, as expected:"
        grep -E "^ERROR" "$WORK/resolve-verl-sglang.log" | head -4
    fi
fi
exit "$status"
