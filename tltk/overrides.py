"""`--set a.b.c=value` overrides, applied to a raw recipe mapping before it is validated.

The value is YAML (safe loading: tags that build Python objects are refused). A key walks
mappings by name and lists by index (`phases.1.epochs=10`). Every error names the override as
it was typed and never a line of the recipe file: the value did not come from there.
"""

from __future__ import annotations

from typing import Any

import yaml

from tltk.errors import RecipeError


def apply_override(raw: dict, item: str) -> str:
    """Set `a.b.c=value` in `raw` (in place); return the dotted key as validation reports it
    (list indices normalised, `phases.01` -> `phases.1`)."""
    if "=" not in item:
        raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. train.batch_size=64")
    key, value = item.split("=", 1)
    where = f"--set {item!r}"
    return set_key(raw, key, _parse_value(value, where), where)


def set_key(raw: dict, key: str, value: Any, where: str) -> str:
    """Set the dotted `key` of `raw` to an already parsed `value` (in place), as `--set`
    does; errors start with `where`. Returns the dotted key as validation reports it."""
    parts = [part.strip() for part in key.split(".")]
    if not all(parts):
        raise RecipeError(
            f"{where}: the key {key.strip()!r} has an empty part; write dotted keys, "
            "e.g. phases.1.epochs=10"
        )
    parsed = value
    node: Any = raw
    done: list[str] = []
    for part in parts[:-1]:
        node = _descend(node, part, done, where)
    last = parts[-1]
    if isinstance(node, list):
        last = str(_index(node, last, done, where))
        node[int(last)] = parsed
    else:
        node[last] = parsed
    return ".".join([*done, last])


def _parse_value(value: str, where: str) -> Any:
    if not value.strip():
        return None
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as e:
        # Only the problem: the YAML mark ("line 1, column 8") is a place in the value, and
        # would read as a line of the recipe file.
        problem = " ".join(
            str(p) for p in (getattr(e, "context", None), getattr(e, "problem", None)) if p
        )
        fix = (
            "YAML tags that build Python objects are not accepted"
            if isinstance(e, yaml.constructor.ConstructorError)
            else "quote a value meant as text, e.g. --set 'name=\"[draft]\"'"
        )
        raise RecipeError(
            f"{where}: the value {value!r} is not valid YAML ({problem or e}); {fix}"
        ) from None


def _descend(node: Any, part: str, done: list[str], where: str) -> Any:
    """The section `part` of `node` (created when missing or null); appends its key to `done`."""
    if isinstance(node, list):
        index = _index(node, part, done, where)
        key: int | str = index
        part = str(index)
    else:
        key = part
        if node.get(part) is None:  # a missing or empty (`train:`) section
            node[part] = {}
    child = node[key]
    if child is None:
        child = node[key] = {}
    done.append(part)
    if not isinstance(child, (dict, list)):
        raise RecipeError(
            f"{where}: {'.'.join(done)} is a value ({child!r}), not a section with keys"
        )
    return child


def _index(items: list, part: str, done: list[str], where: str) -> int:
    dotted = ".".join(done)  # never empty: the top of a recipe is a mapping
    has = f"indices 0..{len(items) - 1}" if items else "no items"
    whole = f"To add or remove items, set the whole list: --set '{dotted}=[...]'"
    if not part.isdecimal():
        raise RecipeError(
            f"{where}: {dotted} is a list ({has}), and {part!r} is not an index. {whole}"
        )
    index = int(part)
    if index >= len(items):
        raise RecipeError(f"{where}: {dotted} has {has}; there is no item {index}. {whole}")
    return index
