"""`python -m srpo_verl.main [--config-name srpo_trainer] ...`: verl's V1 trainer with srpo_verl's configs.

The default config is `srpo_trainer` (the SRPO trainer on GPUs); `--config-name cpu_srpo` / `cpu_grpo` are the CPU
configs (with SRPO_VERL_CPU=1). The same steps as `verl.trainer.main_ppo.main` (device auto-set, config validation,
`run_ppo` with the V1 TaskRunner), with `srpo_verl/config` as the primary config dir and verl's configs on the
search path, and srpo_verl's start-up checks first: a config error is one line on stderr and exit code 2, before
Ray starts (`HYDRA_FULL_ERROR=1` raises it with its traceback instead).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

PACKAGE_DIR = Path(__file__).resolve().parent
PATH_RESOLVER = "srpo_verl_path"


def _verl_config_dir() -> Path:
    """verl's Hydra config dir, found without importing verl (importing it costs ~10 s of CPU; a config error is
    then reported before it)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("verl is not installed in this environment (pip install verl==0.9.1)")
    return Path(next(iter(spec.submodule_search_locations))) / "trainer" / "config"


#: verl's configs as a file:// search path (`pkg://verl.trainer.config` would import verl to locate them).
VERL_CONFIG_SEARCHPATH = f"file://{_verl_config_dir()}"
SEARCHPATH_OVERRIDE = f"hydra.searchpath=['{VERL_CONFIG_SEARCHPATH}']"


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
    extra = SEARCHPATH_OVERRIDE
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


#: exit status of a refused config (argparse's for a usage error); Hydra's own errors exit 1.
CONFIG_ERROR_EXIT = 2
#: what the start-up phase raises for a bad config or environment (verl's validate_config asserts, too).
_STARTUP_ERRORS = (ValueError, AssertionError, FileNotFoundError, OmegaConfBaseException, RuntimeError)


def one_line(error: BaseException) -> str:
    """The error's message on one line (its type's name when it has none)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def exit_on_config_error(error: BaseException) -> None:
    """Print `error: <message>` alone and exit 2; with HYDRA_FULL_ERROR=1 re-raise it (traceback, exit 1)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
    sys.exit(CONFIG_ERROR_EXIT)


#: the checkpoint directory's lock, held until the driver exits (srpo_verl.preflight.lock)
_RUN_LOCK = None


def check_inputs_and_lock(config: DictConfig) -> list[str]:
    """The data rows of local files (srpo_verl.preflight.rows; skipped with SRPO_VERL_SKIP_INPUT_CHECKS=1, then the
    trainer checks them at load) and the lock of trainer.default_local_dir. Returns notes for the console."""
    global _RUN_LOCK
    from srpo_verl.preflight import lock, rows

    notes = []
    if os.environ.get(rows.SKIP_ENV) != "1":
        tokenizer_path = rows.local_tokenizer_path(config)
        tokenizer = None
        if tokenizer_path:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        notes += rows.check_data_files(config, tokenizer)[1]
    directory = OmegaConf.select(config, "trainer.default_local_dir")
    if directory and (_RUN_LOCK is None or _RUN_LOCK.directory != os.path.abspath(str(directory))):
        if _RUN_LOCK is not None:
            _RUN_LOCK.release()
        _RUN_LOCK = lock.acquire_run_lock(str(directory))
        if _RUN_LOCK.stale:
            notes.append(_RUN_LOCK.stale)
    return notes


def startup(config: DictConfig) -> None:
    """Everything before Ray starts: package paths, srpo_verl's checks (srpo_verl.preflight.startup_checks),
    the plugin registration, verl's device auto-set and verl's own validate_config."""
    try:
        from srpo_verl.preflight import startup_checks

        materialise_package_paths(config)
        settings, notes = startup_checks(config)  # fail before Ray starts, naming the key

        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config
        from verl.utils.device import auto_set_device

        from srpo_verl.verl_ext.registration import assert_registered

        assert_registered(where="driver")
        auto_set_device(config)
        validate_config(config=config, use_reference_policy=need_reference_policy(config),
                        use_critic=need_critic(config))
        notes += check_inputs_and_lock(config)
        from srpo_verl.preflight.checkpoint import verify_resume

        # the checkpoint a resume would load (zip CRCs, finite weights, shapes), refused naming the file if bad
        srpo_trainer = OmegaConf.select(config, "trainer.v1.trainer_mode") == "srpo"
        verify_resume(config, uses_teacher=settings.teacher_ema and srpo_trainer,
                      base_teacher=srpo_trainer and settings.teacher_from_model_path)
    except _STARTUP_ERRORS as error:
        exit_on_config_error(error)
    for note in notes:
        print(f"note: {note}", file=sys.stderr, flush=True)


@hydra.main(config_path="config", config_name="srpo_trainer", version_base=None)
def main(config: DictConfig) -> None:
    """Check the composed config (exit 2 on an error) and run verl's trainer (V1 TaskRunner)."""
    startup(config)
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo

    from srpo_verl.verl_ext.preempt import DriverPreemption

    # SIGTERM: stop at a step boundary with a checkpoint, exit 143 (the SRPO trainer; srpo_verl/verl_ext/preempt.py)
    preemption = DriverPreemption(str(OmegaConf.select(config, "trainer.default_local_dir")),
                                  float(OmegaConf.select(config, "srpo.preempt_grace_s", default=300) or 300))
    preemption.install()
    try:
        run_ppo(config, task_runner_class=TaskRunnerV1)
    finally:
        preemption.finish()


if __name__ == "__main__":
    sys.argv = with_verl_searchpath(sys.argv)
    main()
