"""The package's import graph keeps its arrows the right way: the algorithm (core/) imports nothing of the plugin,
and what runs inside a training run (verl_ext/, preflight/, core/) never imports the offline analysis (report/) or
the benchmark drivers (bench/). Read from the source with ast, so a new import that breaks a rule fails here."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "srpo_verl"


def imported_packages(folder: str) -> dict[str, set[str]]:
    """{module path: the srpo_verl subpackages / top-level modules it imports} for every module under ``folder``."""
    found = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(PACKAGE))] = {n.split(".")[1] for n in names if n.startswith("srpo_verl.")}
        found[str(path.relative_to(PACKAGE))] |= {n.split(".")[0] for n in names if n.split(".")[0] in ("verl", "ray")}
    return found


def test_core_imports_only_core_and_the_console_prefix():
    for module, imports in imported_packages("core").items():
        assert imports <= {"core", "console"}, (module, imports)


@pytest.mark.parametrize("folder", ["verl_ext", "preflight", "core"])
def test_training_code_never_imports_the_report_or_the_benchmarks(folder):
    modules = imported_packages(folder)
    assert modules, folder
    for module, imports in modules.items():
        assert not imports & {"report", "bench", "tiny"}, (module, imports)


def test_preflight_config_checks_import_no_verl():
    """The driver's start-up checks run before Ray and without verl's import cost."""
    for module in ("preflight/__init__.py", "preflight/config.py", "preflight/inputs.py", "verl_ext/settings.py"):
        assert "verl" not in imported_packages(str(Path(module).parent))[module], module
