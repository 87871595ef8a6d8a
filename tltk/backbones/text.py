"""Text backbones: any KerasHub text preset (tltk/backbones/hub_text.py) or a registered one
(`text_rnn`, from scratch), behind one `TextBackbone` contract.

A finished run keeps what is needed to rebuild its backbone offline, without the original
preset: `save_text_assets` writes RUN/text_backbone/ (the backbone's `save_assets`: config,
tokenizer or vocabulary, LoRA factors, plus tltk_text.json naming its `asset_type`), and
`load_text_backbone` rebuilds it through that class's `restore`; the caller then loads the
run's model weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tltk.backbones.base import BackboneError, TextBackbone, lookup, set_bn_momentum
from tltk.backbones.hub_text import HubTextBackbone, build_hub_text
from tltk.backbones.text_rnn import TextRNNBackbone
from tltk.io import atomic_directory
from tltk.recipe import BackboneConfig

ASSETS_DIR = "text_backbone"
"""Sub-folder of a run with the text backbone's config, tokenizer/vocabulary and LoRA factors."""
META_FILE = "tltk_text.json"
ASSET_TYPES: dict[str, type[TextBackbone]] = {
    cls.asset_type: cls for cls in (TextRNNBackbone, HubTextBackbone)
}
"""tltk_text.json's `type` -> the class that restores it."""


def build_text_backbone(
    cfg: BackboneConfig, *, train_texts=None, pooling: str | None = None, **kwargs
) -> TextBackbone:
    """The text backbone a recipe names.

    `cfg.name`: `text_rnn`, a KerasHub preset name (keras-nlp names are the same), `hf://...`,
    `kaggle://...` or a local preset folder (KerasHub or Hugging Face layout). `cfg.weights`:
    the preset's own (default), `none` (random init) or a local preset folder to load instead.
    `pooling` (`pooled`|`cls`|`mean`, a `backbone.kwargs` key) overrides the family default;
    other kwargs go to `from_preset` (hub) or to the registered builder (`build_text_rnn`).
    """
    spec = lookup(cfg.name)
    if spec is None:
        backbone = build_hub_text(
            cfg.name,
            cfg.weights,
            cfg.sequence_length,
            lora_rank=cfg.lora_rank,
            pooling=pooling,
            **kwargs,
        )
        return set_bn_momentum(backbone, cfg.bn_momentum)
    if spec.modality != "text":
        raise BackboneError(
            f"backbone.name {cfg.name!r} is an image backbone; text runs need `text_rnn` or "
            "a KerasHub text preset (e.g. a BERT folder)"
        )
    if cfg.lora_rank:
        raise BackboneError("backbone.lora_rank: LoRA applies to KerasHub transformers only")
    try:
        backbone = spec.build(
            cfg.weights, sequence_length=cfg.sequence_length, train_texts=train_texts, **kwargs
        )
    except TypeError as e:
        raise BackboneError(f"backbone.kwargs for {cfg.name}: {e}") from None
    return set_bn_momentum(backbone, cfg.bn_momentum)


def save_text_assets(backbone: TextBackbone, run_dir: str | Path) -> Path:
    """Write RUN/text_backbone/: what `load_text_backbone` needs, offline (no model weights:
    those are the run's model.weights.h5)."""
    final = Path(run_dir) / ASSETS_DIR
    if final.exists():
        shutil.rmtree(final)
    with atomic_directory(final) as tmp:
        meta = {"type": backbone.asset_type, "sequence_length": backbone.sequence_length}
        meta.update(backbone.save_assets(tmp))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return final


def load_text_backbone(run_dir: str | Path) -> TextBackbone:
    """Rebuild a finished run's text backbone from RUN/text_backbone/, offline, with random
    weights (the caller loads the run's model.weights.h5 next)."""
    folder = Path(run_dir) / ASSETS_DIR
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise BackboneError(
            f"{meta_path} not found: {run_dir} has no saved text backbone (was it trained by "
            "tltk with modality: text, and did it finish?)"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("type") not in ASSET_TYPES:
        raise BackboneError(
            f"{meta_path}: backbone type {meta.get('type')!r} is none this tltk restores "
            f"({', '.join(ASSET_TYPES)})"
        )
    return ASSET_TYPES[meta["type"]].restore(folder, meta)
