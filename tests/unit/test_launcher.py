"""scripts/launch/ray_cluster.sh without Ray: the advertised address, the job's runtime env, the submit command and
a `stop` that ends only the process groups the launcher recorded. (The real 2-node run: tests/e2e/test_multinode_e2e.py.)
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "scripts" / "launch" / "ray_cluster.sh"
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not (k.startswith("NCCL_") or k in ("GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME", "NODE_IP", "NODE_IFNAME",
                                                   "ROUTE_TO", "FORWARD_ENV", "RAY_TEMP_DIR", "HEAD_IP"))}
CLEAN_ENV["PYTHON"] = sys.executable


def launch(*args, **env):
    return subprocess.run(["bash", str(LAUNCHER), *args], capture_output=True, text=True, timeout=60,
                          env={**CLEAN_ENV, **env}, cwd=REPO)


def global_ipv4() -> str | None:
    if shutil.which("ip") is None:
        return None
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    return out.split()[3].split("/")[0] if out.strip() else None


def test_node_ip_honours_an_explicit_address():
    result = launch("node-ip", NODE_IP="10.1.2.3")
    assert (result.returncode, result.stdout) == (0, "10.1.2.3\n")


@pytest.mark.parametrize("env", [{"NODE_IP": "127.0.1.1"}, {"NODE_IFNAME": "lo"}])
def test_node_ip_refuses_loopback(env):
    result = launch("node-ip", **env)
    assert result.returncode == 2
    assert "no routable address for this node (got '127.0." in result.stderr
    assert "set NODE_IP, NODE_IFNAME or ROUTE_TO" in result.stderr


def test_node_ip_defaults_to_a_global_address_and_follows_routes():
    address = global_ipv4()
    if address is None:
        pytest.skip("this machine has no global-scope IPv4 address (or no iproute2)")
    assert launch("node-ip").stdout == f"{address}\n"
    assert launch("node-ip", ROUTE_TO=address).stdout == f"{address}\n"  # the route to itself: src = itself


def test_runtime_env_forwards_network_variables():
    result = launch("runtime-env", NCCL_SOCKET_IFNAME="ib0", NCCL_IB_HCA="mlx5_0,mlx5_1", NCCL_IB_GID_INDEX="3",
                    NCCL_DEBUG="INFO", GLOO_SOCKET_IFNAME="ib0", MY_SETTING='a "quoted" value',
                    FORWARD_ENV="MY_SETTING")
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["working_dir"] == str(REPO)
    assert env["env_vars"] == {
        "NCCL_SOCKET_IFNAME": "ib0", "NCCL_IB_HCA": "mlx5_0,mlx5_1", "NCCL_IB_GID_INDEX": "3", "NCCL_DEBUG": "INFO",
        "GLOO_SOCKET_IFNAME": "ib0", "MY_SETTING": 'a "quoted" value',
        "VERL_USE_EXTERNAL_MODULES": "srpo_verl.plugin", "TOKENIZERS_PARALLELISM": "false",
    }


def test_runtime_env_refuses_an_unset_forwarded_name():
    result = launch("runtime-env", FORWARD_ENV="SRPO_SURELY_UNSET_VAR")
    assert result.returncode != 0
    assert "FORWARD_ENV names SRPO_SURELY_UNSET_VAR, which is not set in this shell" in result.stderr


def test_submit_builds_the_ray_job_command(tmp_path):
    fake_ray = tmp_path / "ray"
    fake_ray.write_text(f"#!{sys.executable}\nimport json, sys\nprint('ARGV' + json.dumps(sys.argv[1:]))\n")
    fake_ray.chmod(0o755)
    result = launch("submit", "scripts/launch/cpu_tiny_recipe.sh", "trainer.total_training_steps=2", RAY=str(fake_ray),
                    HEAD_IP="10.0.0.1", DASHBOARD_PORT="8300", NNODES="2", GPUS_PER_NODE="1", MODEL_PATH="/m",
                    DATA_DIR="/d", GLOO_SOCKET_IFNAME="eth1")
    assert result.returncode == 0, result.stderr
    argv = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("ARGV"))[4:])
    assert argv[:3] == ["job", "submit", "--address=http://10.0.0.1:8300"]
    runtime_env = json.loads(argv[3].removeprefix("--runtime-env-json="))
    assert runtime_env["env_vars"]["GLOO_SOCKET_IFNAME"] == "eth1"
    entry = argv[argv.index("--") + 1:]
    assert entry[0] == "env" and entry[-3:] == ["bash", "scripts/launch/cpu_tiny_recipe.sh",
                                                "trainer.total_training_steps=2"]
    assert {"NNODES=2", "GPUS_PER_NODE=1", "MODEL_PATH=/m", "DATA_DIR=/d"} <= set(entry)


def test_submit_refuses_a_missing_recipe():
    result = launch("submit", "recipes/nope.sh")
    assert result.returncode == 2 and "recipe recipes/nope.sh not found" in result.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child counts as gone
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_stop_ends_only_the_recorded_process_groups(tmp_path):
    state = tmp_path / "srpo_launcher"
    state.mkdir()
    # two stand-ins for `ray start` sessions (each a process group with a child), one recorded, one not
    ours = subprocess.Popen(["bash", "-c", "sleep 300 & wait"], start_new_session=True)
    other = subprocess.Popen(["bash", "-c", "sleep 300 & wait"], start_new_session=True)
    try:
        time.sleep(0.5)
        (state / f"head-{ours.pid}.pgid").write_text(f"{ours.pid}\n")
        result = launch("stop", RAY_TEMP_DIR=str(tmp_path), STOP_TIMEOUT_S="5")
        assert result.returncode == 0, result.stderr
        ours.wait(timeout=10)
        time.sleep(0.5)
        with pytest.raises(ProcessLookupError):  # its child went with it
            os.killpg(ours.pid, 0)
        assert not list(state.glob("*.pgid"))
        assert _alive(other.pid)
    finally:
        for proc in (ours, other):
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()


def test_stop_without_recorded_nodes_says_so_and_kills_nothing(tmp_path):
    result = launch("stop", RAY_TEMP_DIR=str(tmp_path))
    assert result.returncode == 0
    assert f"no Ray node started by this script is recorded under {tmp_path}/srpo_launcher" in result.stderr
