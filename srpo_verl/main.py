"""`python -m srpo_verl.main --config-name cpu_grpo ...`: verl's PPO/GRPO trainer with srpo_verl's configs.

The same three steps as `verl.trainer.main_ppo.main` (device auto-set, config validation, `run_ppo` with the V1
TaskRunner), with `srpo_verl/config` as the primary config dir and verl's configs on the search path. Later work
swaps the TaskRunner / trainer for SRPO's here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
PATH_RESOLVER = "srpo_verl_path"
VERL_CONFIG_SEARCHPATH = "pkg://verl.trainer.config"


# Hydra's command-line flags that take a value (``--info`` takes an optional one from a fixed set).
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
                "-cd", "--experimental-rerun"}
_INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def with_verl_searchpath(argv: list[str]) -> list[str]:
    """Put verl's configs on Hydra's search path from the command line (Hydra accepts `hydra.searchpath` only
    in the primary config, and our configs are also used as defaults of one another). A user's own
    `hydra.searchpath=...` is kept as given and must then include verl's.

    The override goes next to the user's overrides (argparse rejects overrides split by flags such as
    `--cfg job`), or at the end when there are none.
    """
    args = argv[1:]
    if any(arg.lstrip("+").startswith("hydra.searchpath") for arg in args):
        return argv
    extra = f"hydra.searchpath=[{VERL_CONFIG_SEARCHPATH}]"
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in _VALUE_FLAGS:
            index += 2
        elif arg in ("--info", "-i") and index + 1 < len(args) and args[index + 1] in _INFO_VALUES:
            index += 2
        elif arg.startswith("-"):
            index += 1
        else:
            return [argv[0], *args[:index], extra, *args[index:]]
    return [*argv, extra]


def package_path(relative: str) -> str:
    """Absolute path of a file inside the srpo_verl package; raises if it does not exist."""
    path = PACKAGE_DIR / relative
    if not path.exists():
        raise FileNotFoundError(f"${{{PATH_RESOLVER}:{relative}}}: {path} does not exist")
    return str(path)


def materialise_package_paths(config: DictConfig) -> None:
    """Replace every `${srpo_verl_path:...}` value by its absolute path, in place.

    Ray workers resolve the config again without our resolver registered, so these values must be plain strings
    before the config leaves the driver.
    """
    raw = OmegaConf.to_container(config, resolve=False)

    def walk(node, dotted: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{dotted}.{key}" if dotted else str(key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{dotted}[{index}]")
        elif isinstance(node, str) and f"${{{PATH_RESOLVER}:" in node:
            OmegaConf.update(config, dotted, OmegaConf.select(config, dotted), merge=False)

    walk(raw, "")


if not OmegaConf.has_resolver(PATH_RESOLVER):
    OmegaConf.register_new_resolver(PATH_RESOLVER, package_path)


@hydra.main(config_path="config", config_name="cpu_grpo", version_base=None)
def main(config: DictConfig) -> None:
    """Validate the composed config and run verl's trainer (V1 TaskRunner)."""
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    from srpo_verl.verl_ext.config import validate_run_config
    from srpo_verl.verl_ext.registration import assert_registered

    assert_registered(where="driver")
    materialise_package_paths(config)
    if config.trainer.get("v1", {}).get("trainer_mode") == "srpo":
        validate_run_config(config)  # fail before Ray starts, naming the key
    auto_set_device(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    if not config.trainer.use_v1:
        raise ValueError("srpo_verl.main runs verl's V1 trainer only: set trainer.use_v1=true")
    run_ppo(config, task_runner_class=TaskRunnerV1)


if __name__ == "__main__":
    sys.argv = with_verl_searchpath(sys.argv)
    main()
