"""What `tltk check` adds to the schema: the names a recipe uses exist here.

Checked without building a model or downloading anything. The backbone name is looked up the
way `build_backbone` resolves it: the registry first, then KerasHub's preset forms (`hf://`,
`kaggle://`, a local preset folder, a built-in preset name). keras_hub is imported only for a
name that is none of the others, to read its built-in preset names.
"""

from __future__ import annotations

from pathlib import Path

from tltk.recipe import Recipe

HUB_URI_PREFIXES = ("hf://", "kaggle://")


def check_recipe(recipe: Recipe) -> None:
    """Raise a tltk error (a ValueError) naming the first recipe key whose name does not exist."""
    check_backbone_name(recipe.backbone.name, modality=recipe.modality)


def check_backbone_name(name: str, *, modality: str = "image") -> None:
    """Raise BackboneError, with close matches, unless `name` can be built for `modality`."""
    from tltk.backbones.base import BackboneError, lookup, unknown_name_error

    spec = lookup(name)
    if spec is not None:
        if spec.modality != modality:
            raise BackboneError(
                f"backbone.name: {name!r} is {_article(spec.modality)} {spec.modality} backbone, "
                f"and this recipe's modality is {modality}; `tltk backbones` lists each name's "
                "family"
            )
        return
    if name.startswith(HUB_URI_PREFIXES):
        return
    folder = Path(name)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise BackboneError(
                f"backbone.name: {name} is a folder without config.json; a backbone folder is a "
                "KerasHub preset (save_to_preset) or a Hugging Face model folder"
            )
        return
    if "/" in name or name.startswith((".", "~")):
        raise BackboneError(
            f"backbone.name: {name!r} looks like a path, but there is no folder "
            f"{folder.absolute()} (relative paths start from the current folder)"
        )
    import keras_hub  # only now: 4-5 s to import, and the one place preset names are listed

    presets = keras_hub.models.Backbone.presets
    if name not in presets:
        raise unknown_name_error(name, extra=sorted(presets))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
