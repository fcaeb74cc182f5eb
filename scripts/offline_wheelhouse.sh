#!/usr/bin/env bash
# Wheels for an air-gapped machine: download what a requirement set needs for ANOTHER Python / platform, lock it with
# sha256 hashes, optionally cut it into parts of at most N bytes (for transfers with a size limit), and put it back
# together on the far side.
#
#   bash scripts/offline_wheelhouse.sh build --requirements REQS --out DIR [options]
#       REQS: `name==version` lines (a venv's `pip freeze`; comments, -e / `@ file:` lines of local projects are
#       skipped), or any requirement lines with --with-deps (pip resolves them for the target).
#       --python-version 3.12     target Python (default 3.12); --abi defaults to cp<version without dot>
#       --arch x86_64             manylinux architecture (default x86_64); --platform TAG (repeatable) replaces the
#                                 default list (manylinux2014, manylinux1 and manylinux_2_17 .. manylinux_2_39)
#       --present FILE            packages already on the target (`name` or `name==version` lines, `pip list
#                                 --format=freeze` works): a bare name is dropped whatever its version, a pinned one
#                                 only when the versions agree (otherwise ours travels and shadows it)
#       --exclude NAME[,NAME]     also drop these (with the reason in DIR/dropped.txt)
#       --part-size SIZE          cut DIR/wheels into DIR/parts/part-NNN of at most SIZE bytes (K/M/G suffixes,
#                                 powers of 1024); a wheel larger than SIZE is split into chunks (split -b)
#       --find-links DIR / --no-index / --index-url URL   passed to pip (an offline set from a local directory)
#       --with-deps               let pip resolve dependencies for the target instead of --no-deps per pin
#     A package with no wheel for the target but a source distribution is built here with `pip wheel` and kept only
#     when the result is pure Python (py3-none-any); a compiled one fails with its name.
#     Writes DIR/wheels/, DIR/wheelhouse.lock (`name==version --hash=sha256:...`, usable with pip's hash checking),
#     DIR/dropped.txt, and with --part-size DIR/parts/ + DIR/manifest.tsv; prints the install step.
#
#   bash scripts/offline_wheelhouse.sh assemble --lock LOCK --out WHEELDIR DIR [DIR...]
#       On the target: gathers the files of the given part directories, joins split wheels, checks every wheel's
#       sha256 against LOCK (and that LOCK is complete), and leaves the wheels in WHEELDIR. Needs bash, cat and
#       sha256sum only.
#
#   bash scripts/offline_wheelhouse.sh --help     this text (also -h, and after build / assemble)
set -euo pipefail

PYTHON=${PYTHON:-python3}
die() { echo "[wheelhouse] error: $*" >&2; exit 2; }
say() { echo "[wheelhouse] $*" >&2; }
# The comment block at the top of this file, without its leading "# ".
usage() { sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
# pip on some hosts warns once per package about configured local indexes that do not exist: drop that noise only.
pip_quiet() { "$PYTHON" -m pip --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

to_bytes() {  # 56M -> 58720256
    local size=$1 number unit
    [[ "$size" =~ ^([0-9]+)([KkMmGg]?)$ ]] || die "--part-size $size: expected a number with an optional K, M or G"
    number=${BASH_REMATCH[1]}; unit=${BASH_REMATCH[2]^^}
    case "$unit" in K) echo $((number * 1024)) ;; M) echo $((number * 1024 ** 2)) ;; G) echo $((number * 1024 ** 3)) ;;
                    *) echo "$number" ;; esac
}

# ---- the pure-Python helpers (standard library only) ----------------------------------------------------------
# select REQS PRESENT EXCLUDE -> prints the requirements to fetch on stdout, the dropped ones on fd 3
py_select='
import re, sys
def canon(n): return re.sub(r"[-_.]+", "-", n).lower()
def parse(path):
    out = []
    for raw in open(path):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-e ", "--editable")) or " @ file:" in line or line.startswith("file:"):
            print(f"skipped local project: {line}", file=sys.stderr); continue
        if line.startswith("-"):
            sys.exit(f"{path}: option lines are not supported: {line}")
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^]]*\])?\s*(.*)$", line)
        if not m:
            sys.exit(f"{path}: cannot read requirement {line!r}")
        name, spec = m.group(1), m.group(3).strip()
        pin = re.fullmatch(r"==\s*([^\s;,]+)", spec)
        out.append((canon(name), name + (m.group(2) or "") + (spec and " " + spec if not pin else "==" + pin.group(1)),
                    pin.group(1) if pin else None))
    return out
reqs, present_path, exclude = parse(sys.argv[1]), sys.argv[2], {canon(x) for x in sys.argv[3].split(",") if x}
present = {name: version for name, _, version in (parse(present_path) if present_path else [])}
dropped = open(3, "w")
for name, text, version in reqs:
    local = version.split("+", 1)[1] if version and "+" in version else None
    if name in exclude:
        print(f"{text}\texcluded (--exclude)", file=dropped)
    elif name in present and present[name] is None:
        print(f"{text}\tpresent on the target", file=dropped)
    elif name in present and version and present[name].split("+")[0] == version.split("+")[0]:
        print(f"{text}\tpresent on the target at the same version", file=dropped)
    elif local:
        sys.exit(f"{text}: a local version (+{local}) comes from another index; list it in --present or --exclude")
    else:
        print(text + ("" if name not in present else f"  # the target has {present[name]}; ours shadows it"))
'

# lock WHEELDIR -> `name==version --hash=sha256:...` per wheel, sorted; fails on two versions of one name
py_lock='
import hashlib, pathlib, re, sys
entries = {}
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    name = re.sub(r"[-_.]+", "-", name).lower()
    if name in entries:
        sys.exit(f"two wheels of {name}: {entries[name][0]} and {version}")
    entries[name] = (version, hashlib.sha256(wheel.read_bytes()).hexdigest())
for name, (version, digest) in sorted(entries.items()):
    print(f"{name}=={version} --hash=sha256:{digest}")
'

# pack WHEELDIR PARTSDIR LIMIT LOCK -> the lock and the wheels into part-NNN directories of at most LIMIT bytes
# (first fit, largest first; the lock goes to part-001); a wheel over LIMIT is cut into LIMIT-byte chunks NAME.000,
# NAME.001, ... (assemble joins them by name, whichever parts they travel in). Prints the manifest: part, file,
# bytes, sha256 of the file, the wheel it belongs to.
py_pack='
import hashlib, pathlib, sys
wheels, parts, limit, lock = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3]), pathlib.Path(sys.argv[4])
pieces = []  # (size, file name, content, wheel name)
for wheel in sorted(wheels.glob("*.whl"), key=lambda p: (-p.stat().st_size, p.name)):
    data = wheel.read_bytes()
    if len(data) <= limit:
        pieces.append((len(data), wheel.name, data, wheel.name))
    else:
        for index, start in enumerate(range(0, len(data), limit)):
            chunk = data[start:start + limit]
            pieces.append((len(chunk), f"{wheel.name}.{index:03d}", chunk, wheel.name))
lock_bytes = lock.read_bytes()
if len(lock_bytes) > limit:
    sys.exit(f"the lock alone ({len(lock_bytes)} bytes) is over the part size {limit}")
bins = [[limit - len(lock_bytes), [(len(lock_bytes), lock.name, lock_bytes, "-")]]]
for piece in sorted(pieces, key=lambda p: -p[0]):
    for b in bins:
        if b[0] >= piece[0]:
            b[0] -= piece[0]
            b[1].append(piece)
            break
    else:
        bins.append([limit - piece[0], [piece]])
for number, (_, content) in enumerate(bins, 1):
    directory = parts / f"part-{number:03d}"
    directory.mkdir(parents=True)
    for size, name, data, wheel in content:
        (directory / name).write_bytes(data)
        print(f"{directory.name}\t{name}\t{size}\t{hashlib.sha256(data).hexdigest()}\t{wheel}")
'

default_platforms() {
    local arch=$1 n
    echo "manylinux2014_$arch"; echo "manylinux1_$arch"
    for n in $(seq 17 39); do echo "manylinux_2_${n}_$arch"; done
}

build() {
    local reqs="" out="" pyver=3.12 abi="" arch=x86_64 present="" exclude="" part_size="" with_deps=0
    local -a platforms=() pip_index=()
    while (($#)); do
        case "$1" in
            --requirements) reqs=$2; shift 2 ;;
            --out) out=$2; shift 2 ;;
            --python-version) pyver=$2; shift 2 ;;
            --abi) abi=$2; shift 2 ;;
            --arch) arch=$2; shift 2 ;;
            --platform) platforms+=("$2"); shift 2 ;;
            --present) present=$2; shift 2 ;;
            --exclude) exclude=$2; shift 2 ;;
            --part-size) part_size=$(to_bytes "$2"); shift 2 ;;
            --find-links) pip_index+=(--find-links "$2"); shift 2 ;;
            --index-url) pip_index+=(--index-url "$2"); shift 2 ;;
            --no-index) pip_index+=(--no-index); shift ;;
            --with-deps) with_deps=1; shift ;;
            -h|--help) usage; exit 0 ;;
            *) die "build: unknown option $1" ;;
        esac
    done
    [[ -n "$reqs" && -f "$reqs" ]] || die "build: --requirements FILE is required (got '${reqs}')"
    [[ -n "$out" ]] || die "build: --out DIR is required"
    [[ -z "$present" || -f "$present" ]] || die "build: --present $present does not exist"
    [[ "$pyver" =~ ^3\.[0-9]+$ ]] || die "build: --python-version $pyver: expected 3.N"
    abi=${abi:-cp${pyver/./}}
    ((${#platforms[@]})) || mapfile -t platforms < <(default_platforms "$arch")
    [[ ! -e "$out/wheels" ]] || die "build: $out/wheels exists; use a fresh --out"
    mkdir -p "$out/wheels"
    local wanted="$out/requirements.txt"
    "$PYTHON" -c "$py_select" "$reqs" "$present" "$exclude" > "$wanted" 3> "$out/dropped.txt"
    say "$(grep -c . "$wanted" || true) requirements to fetch, $(grep -c . "$out/dropped.txt" || true) dropped ($out/dropped.txt)"
    [[ -s "$wanted" ]] || die "build: nothing left to fetch"

    local -a target=(--only-binary=:all: --python-version "$pyver" --implementation cp --abi "$abi" --abi abi3
                     --abi none)
    local platform
    for platform in "${platforms[@]}"; do target+=(--platform "$platform"); done
    local -a deps=(--no-deps)
    ((with_deps)) && deps=()
    # One pip call for the whole set; a pin with no wheel for the target (pip names it) is built here from its source
    # distribution, kept only when pure Python, and the call is repeated without it.
    local todo="$out/.todo.txt" log="$out/.pip.log" missing name built
    cp "$wanted" "$todo"
    until pip_quiet download -q "${deps[@]}" "${target[@]}" "${pip_index[@]}" -d "$out/wheels" -r "$todo" 2> "$log"; do
        missing=$(sed -n 's/^ERROR: No matching distribution found for \([^ ]*\).*/\1/p' "$log" | head -1)
        if [[ -z "$missing" ]] || ((with_deps)); then
            cat "$log" >&2
            die "build: pip could not fetch the set for cp${pyver/./} ${arch} (above)"
        fi
        name=${missing%%[=<>!~ []*}
        say "no wheel of $missing for cp${pyver/./} ${arch}: building it from its source distribution"
        built=$(mktemp -d)
        pip_quiet wheel -q --no-deps --no-binary="$name" "${pip_index[@]}" -w "$built" "$missing" >&2 \
            || die "build: $missing has neither a wheel for the target nor a source distribution pip can build"
        compgen -G "$built/*-py3-none-any.whl" > /dev/null || compgen -G "$built/*-py2.py3-none-any.whl" > /dev/null \
            || die "build: $missing has no wheel for the target and compiles ($(ls "$built")): build it there"
        mv "$built"/*.whl "$out/wheels/"
        rm -rf "$built"
        "$PYTHON" -c "import re, sys; n = re.sub(r'[-_.]+', '-', sys.argv[1]).lower()
lines = [l for l in open(sys.argv[2]) if re.sub(r'[-_.]+', '-', re.split(r'[=<>!~ \[;]', l.strip(), maxsplit=1)[0]).lower() != n]
open(sys.argv[2], 'w').writelines(lines)" "$name" "$todo"
        grep -q '^[^#[:space:]]' "$todo" || break
    done
    rm -f "$todo" "$log"
    "$PYTHON" -c "$py_lock" "$out/wheels" > "$out/wheelhouse.lock"
    local count total
    count=$(grep -c . "$out/wheelhouse.lock")
    total=$(du -cb "$out"/wheels/*.whl | tail -1 | cut -f1)
    say "$count wheels, $total bytes ($((total / 1024 / 1024)) MiB); lock: $out/wheelhouse.lock"
    if [[ -n "$part_size" ]]; then
        rm -rf "$out/parts"
        "$PYTHON" -c "$py_pack" "$out/wheels" "$out/parts" "$part_size" "$out/wheelhouse.lock" > "$out/manifest.tsv"
        local part
        for part in "$out"/parts/part-*; do
            say "$(basename "$part"): $(find "$part" -type f -printf '%s\n' | awk '{s += $1} END {print s}') bytes, $(find "$part" -type f | wc -l) files"
        done
    fi
    echo "# Install on the target (offline; --no-deps: the lock is the complete set next to what the target has):"
    if [[ -n "$part_size" ]]; then
        echo "bash scripts/offline_wheelhouse.sh assemble --lock PARTS/part-001/wheelhouse.lock --out WHEELS PARTS/part-*"
        echo "python$pyver -m pip install --no-index --no-deps --find-links WHEELS -r PARTS/part-001/wheelhouse.lock [--target DIR]"
    else
        echo "python$pyver -m pip install --no-index --no-deps --find-links $out/wheels -r $out/wheelhouse.lock [--target DIR]"
    fi
}

assemble() {
    local lock="" out=""
    local -a dirs=()
    while (($#)); do
        case "$1" in
            --lock) lock=$2; shift 2 ;;
            --out) out=$2; shift 2 ;;
            -h|--help) usage; exit 0 ;;
            -*) die "assemble: unknown option $1" ;;
            *) dirs+=("$1"); shift ;;
        esac
    done
    [[ -f "$lock" ]] || die "assemble: --lock FILE is required (got '${lock}')"
    [[ -n "$out" ]] || die "assemble: --out DIR is required"
    ((${#dirs[@]})) || die "assemble: name the part directories"
    mkdir -p "$out"
    local dir file base
    for dir in "${dirs[@]}"; do
        [[ -d "$dir" ]] || die "assemble: $dir is not a directory"
        for file in "$dir"/*.whl; do [[ -e "$file" ]] && cp -f "$file" "$out/"; done
    done
    # chunks NAME.whl.000, .001, ... (possibly from different parts) are joined in order
    local -A chunked=()
    for dir in "${dirs[@]}"; do
        for file in "$dir"/*.whl.[0-9][0-9][0-9]; do [[ -e "$file" ]] && chunked[$(basename "${file%.*}")]=1; done
    done
    for base in "${!chunked[@]}"; do
        local -a chunks=()
        mapfile -t chunks < <(for dir in "${dirs[@]}"; do ls "$dir/$base".[0-9][0-9][0-9] 2>/dev/null; done \
                              | awk -F/ '!seen[$NF]++ {print $NF "\t" $0}' | sort | cut -f2)
        local expected
        expected=$(awk -F'[.]' '{print $NF}' <<< "${chunks[-1]}")
        ((10#$expected + 1 == ${#chunks[@]})) || die "assemble: $base: ${#chunks[@]} chunks found, the last is .$expected"
        cat "${chunks[@]}" > "$out/$base"
    done
    # every wheel of the lock, with its hash; nothing else
    local spec digest name version wheel bad=0 count=0
    while read -r spec digest; do
        [[ -n "$spec" ]] || continue
        name=${spec%%==*}; version=${spec#*==}; digest=${digest#--hash=sha256:}
        wheel=$(find "$out" -maxdepth 1 -name '*.whl' -printf '%f\n' | awk -v n="$name" -v v="$version" '
            {split($0, f, "-"); x=f[1]; gsub(/[-_.]+/, "-", x); if (tolower(x) == tolower(n) && f[2] == v) print}')
        if [[ -z "$wheel" ]]; then
            echo "[wheelhouse] missing: $spec" >&2; bad=1; continue
        fi
        if [[ "$(sha256sum "$out/$wheel" | cut -d' ' -f1)" != "$digest" ]]; then
            echo "[wheelhouse] sha256 mismatch: $wheel" >&2; bad=1; continue
        fi
        count=$((count + 1))
    done < "$lock"
    ((bad == 0)) || die "assemble: the wheels in $out do not match $lock"
    local present
    present=$(find "$out" -maxdepth 1 -name '*.whl' | wc -l)
    ((present == count)) || die "assemble: $out holds $present wheels, the lock names $count"
    say "assembled $count wheels in $out, every sha256 matches $lock"
}

case "${1:-}" in
    build) shift; build "$@" ;;
    assemble) shift; assemble "$@" ;;
    -h|--help|help) usage ;;
    *) echo "usage: $0 build --requirements REQS --out DIR [options] | assemble --lock LOCK --out WHEELDIR DIR..." >&2
       echo "(options: $0 --help)" >&2; exit 2 ;;
esac
