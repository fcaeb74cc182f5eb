"""Run a function on a module right after its first import (or at once if it is already imported).

`after_import(name, hook)` runs `hook(module)` now if `name` is in `sys.modules`, else from a `sys.meta_path` finder
right after the module body executes. srpo_verl uses it to register names in verl (the SRPO trainer, the `hf`
rollout) and, with `SRPO_VERL_CPU=1`, to patch verl for the CPU backend, without importing verl's heavy modules
early and independently of the order in which verl imports them (a module that binds a function by name at import
time would keep the unpatched one if the patch ran later).

Standard library only: the plugin entry point imports this on every `import verl`.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from types import ModuleType
from typing import Callable

ModuleHook = Callable[[ModuleType], None]

_pending: dict[str, list[ModuleHook]] = {}
_lock = threading.Lock()
_applied: list[str] = []


class _HookingLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the hooks registered for the module."""

    def __init__(self, inner: importlib.abc.Loader, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        with _lock:
            hooks = _pending.pop(self._name, [])
        for hook in hooks:
            _run(hook, module)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that wraps the loader of watched modules; it never finds a module by itself."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _HookingLoader(spec.loader, fullname)
                return spec
        return None


_FINDER = _PostImportFinder()


def _run(hook: ModuleHook, module: ModuleType) -> None:
    hook(module)
    _applied.append(f"{module.__name__}:{hook.__name__}")


def after_import(module_name: str, hook: ModuleHook) -> None:
    """Run `hook(module)` now if `module_name` is imported, else right after its first import."""
    module = sys.modules.get(module_name)
    if module is not None:
        _run(hook, module)
        return
    with _lock:
        _pending.setdefault(module_name, []).append(hook)
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def applied_hooks() -> list[str]:
    """'module:hook' for every hook run so far in this process, in order (for tests and start-up logs)."""
    return list(_applied)


def mark_wrapper(wrapper: Callable, original: Callable, marker: str) -> Callable:
    """Tag ``wrapper`` as srpo_verl's replacement of ``original``: attribute ``marker`` (so a second patch sees it and
    leaves it), ``__wrapped__`` and the original's docstring. Returns ``wrapper``."""
    setattr(wrapper, marker, True)
    wrapper.__wrapped__ = original
    wrapper.__doc__ = original.__doc__
    return wrapper
