"""Loading a recipe: YAML (or a dict) + `--set a.b=c` overrides -> a validated `Recipe`, and
errors that name the file, the key's dotted path, its line and the closest valid key."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tltk.errors import RecipeError
from tltk.overrides import apply_override
from tltk.recipe.schema import Recipe
from tltk.recipe.tuning import check_space


def load_recipe(source: str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe from a YAML file (or a dict), apply `a.b=c` overrides, validate it."""
    if isinstance(source, dict):
        raw, where, lines = copy.deepcopy(source), "<recipe>", {}  # overrides edit it in place
    else:
        path = Path(source)
        if not path.is_file():
            raise RecipeError(f"{path}: recipe file not found")
        text = path.read_text()
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise RecipeError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise RecipeError(f"{path}: a recipe is a mapping of sections (data, backbone, ...)")
        where, lines = str(path), _key_lines(text)
        raw.setdefault("name", path.stem)
    overridden = {apply_override(raw, item): item for item in overrides}
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(_explain(e, where, lines, overridden)) from None
    if recipe.tune is not None:
        check_space(recipe.without_tune(), recipe.tune, lambda r: load_recipe(r), where, lines)
    return recipe


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `loc` (for suggesting close keys)."""
    model: Any = Recipe
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
        if model is None:
            return None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _explain(
    error: ValidationError, where: str, lines: dict[str, int], overridden: dict[str, str]
) -> str:
    out = [f"{where}: invalid recipe"]
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        at = _origin(dotted, lines, overridden)
        if err["type"] == "extra_forbidden":
            model = _model_at(loc)
            valid = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            out.append(f"  {dotted}{at}: unknown key{hint} Valid keys here: {', '.join(valid)}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            out.append(f"  {dotted}{at}: {err['msg']}{shown}")
    return "\n".join(out)


def _origin(dotted: str, lines: dict[str, int], overridden: dict[str, str]) -> str:
    """Where `dotted` came from: its line in the file, or the `--set` that wrote it or a section
    around it (there, the file's line would point at a value that is no longer used)."""
    for key, item in overridden.items():
        if _within(dotted, key) or _within(key, dotted):
            return f" (--set {item!r})"
    line = lines.get(dotted)
    return f" (line {line})" if line else ""


def _within(dotted: str, section: str) -> bool:
    return dotted == section or dotted.startswith(section + ".")


def _key_lines(text: str) -> dict[str, int]:
    """Map dotted key paths to 1-based line numbers, for error messages."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    found: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                dotted = f"{prefix}.{key.value}" if prefix else str(key.value)
                found[dotted] = key.start_mark.line + 1
                walk(value, dotted)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                dotted = f"{prefix}.{i}"
                found[dotted] = value.start_mark.line + 1
                walk(value, dotted)

    walk(root, "")
    return found
