"""Registries of "module:Class" paths, imported when asked: the task types (tltk.heads) and the
modalities (tltk.modalities) are named without importing TensorFlow, so a recipe is validated
against the names alone."""

from __future__ import annotations

import importlib
from typing import Any


def instantiate(registry: dict[str, str], name: str, *, what: str, registry_name: str) -> Any:
    """An instance of the class `registry[name]` names; its `name` must be `name`.

    ValueError naming the registered names for an unknown one (`what`: "head type", ...).
    """
    if name not in registry:
        raise ValueError(f"{what} {name!r}: expected one of {', '.join(registry)}")
    module, _, cls = registry[name].partition(":")
    instance = getattr(importlib.import_module(module), cls)()
    if instance.name != name:  # a registry line that points at the wrong class
        raise ValueError(
            f"{registry_name}[{name!r}] is {registry[name]}, whose name is {instance.name!r}"
        )
    return instance
