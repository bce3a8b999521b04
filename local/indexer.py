"""Find the app's functions the way the Python worker does: import the script, require
exactly one FunctionApp, call ``get_functions()`` once, and read each function's
function.json bindings."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: dict[str, Any]
    bindings: tuple[dict[str, Any], ...]
    function: Any
    parameters: tuple[str, ...]
    is_async: bool

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    def outputs(self, binding_type: str) -> list[dict[str, Any]]:
        return [b for b in self.bindings if b.get("direction") == "OUT" and b.get("type") == binding_type]


class IndexingError(RuntimeError):
    pass


def load_app(script: Path) -> tuple[ModuleType, func.FunctionRegister]:
    """Import the script as the worker does (its folder on sys.path); return it and its app."""
    script = script.resolve()
    root = str(script.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    module_name = script.stem
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise IndexingError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise IndexingError(f"{script.name} must define exactly one FunctionApp; found {len(apps)}")
    return module, apps[0]


def index_functions(app: func.FunctionRegister) -> list[FunctionSpec]:
    """Call ``get_functions()`` (it may be called only once per app) and describe each function."""
    specs = []
    for function in app.get_functions():
        bindings = tuple(json.loads(function.get_function_json())["bindings"])
        triggers = [b for b in bindings if b["type"].endswith("Trigger")]
        if len(triggers) != 1:
            raise IndexingError(f"{function.get_function_name()}: expected one trigger, found {len(triggers)}")
        user_function = function.get_user_function()
        specs.append(
            FunctionSpec(
                name=function.get_function_name(),
                trigger=triggers[0],
                bindings=bindings,
                function=user_function,
                parameters=tuple(inspect.signature(user_function).parameters),
                is_async=inspect.iscoroutinefunction(user_function),
            )
        )
    return specs
