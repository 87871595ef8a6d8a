"""KerasHub text backbones (BERT, DistilBERT, RoBERTa, DeBERTaV3, ALBERT, ELECTRA, ...) from
a preset name, hf://, kaggle:// or a local folder (KerasHub or Hugging Face layout).

The backbone becomes a functional model from its token inputs (token_ids, padding_mask, maybe
segment_ids) to pooled features [B, hidden]; its groups are in tltk/backbones/text_layers.py.
The tokenizer is the family's `TextClassifierPreprocessor`, built with the recipe's
`sequence_length` (a classifier's `from_preset` would ignore it). With `lora_rank`, LoRA is
enabled on the attention query/value projections and the groups hold only those layers, so a
phase trains the LoRA factors (and the head) while every base weight stays frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from tltk.backbones.base import BackboneError, TextBackbone
from tltk.backbones.text_layers import (
    MaskedMeanPooling,
    TokenPooling,
    layer_groups,
    lora_groups,
)

LORA_FILE = "backbone.lora.h5"  # keras-hub's save_lora_weights insists on `.lora.h5`
POOLINGS = ("pooled", "cls", "mean")
# What KerasHub's own TextClassifier feeds its head, per family: the pooled (tanh dense) CLS
# output where the family has one (BERT, ALBERT, FNet), else the first token's hidden state.
_POOLED_FAMILIES = ("BertBackbone", "AlbertBackbone", "FNetBackbone")
_OWN_WEIGHTS = (None, "imagenet", "preset")  # recipe values meaning "the preset's own weights"


@dataclass(kw_only=True)
class HubTextBackbone(TextBackbone):
    hub: Any
    """The `keras_hub.models.Backbone` whose outputs `model` pools (it holds the LoRA state)."""
    preset: str
    pooling: str
    lora_rank: int | None = None

    asset_type = "keras_hub"

    def save_assets(self, folder: Path) -> dict:
        """The backbone's config and metadata, the tokenizer, and the LoRA factors."""
        # KerasHub's public saver writes the weights too; this backbone's are in the run's
        # model.weights.h5, so its copy goes.
        self.hub.save_to_preset(str(folder))
        for weights in folder.glob("model*.weights.*"):
            weights.unlink()
        self.preprocessor.save_to_preset(str(folder))
        if self.lora_rank:
            self.hub.save_lora_weights(str(folder / LORA_FILE))
        return {"pooling": self.pooling, "lora_rank": self.lora_rank, "preset": self.preset}

    @classmethod
    def restore(cls, folder: Path, meta: dict) -> HubTextBackbone:
        """Random weights, LoRA factors restored. Keras saves a LoRA layer's kernel with its
        update merged in and zeroes the factors on load, so once the caller loads the run's
        model weights, predictions match the trained model exactly."""
        import keras_hub

        hub = keras_hub.models.Backbone.from_preset(str(folder), load_weights=False)
        preprocessor = _preprocessor(str(folder), meta["sequence_length"])
        backbone = _assemble(hub, preprocessor, meta["preset"], meta["pooling"], meta["lora_rank"])
        if meta["lora_rank"]:
            hub.load_lora_weights(str(folder / LORA_FILE))
        return backbone


def build_hub_text(
    preset: str,
    weights: str | None,
    sequence_length: int,
    *,
    lora_rank: int | None = None,
    pooling: str | None = None,
    **kwargs,
) -> HubTextBackbone:
    """A KerasHub text backbone + its tokenizer at `sequence_length` (see the module doc)."""
    import keras_hub

    source = _resolve_source(preset, weights)
    try:
        hub = keras_hub.models.Backbone.from_preset(
            source, load_weights=weights is not None, **kwargs
        )
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise BackboneError(
            f"backbone.name: could not load KerasHub preset {source!r}: {e}"
        ) from None
    preprocessor = _preprocessor(source, sequence_length)
    return _assemble(hub, preprocessor, preset, pooling, lora_rank)


def _resolve_source(preset: str, weights: str | None) -> str:
    from tltk.backbones.hub import fetch_check, is_hub_preset

    if weights not in _OWN_WEIGHTS:
        if not (Path(weights) / "config.json").is_file():
            raise BackboneError(
                f"backbone.weights: {weights!r} is not a KerasHub preset folder (no config.json)"
            )
        return weights
    if Path(preset).is_dir():
        if not (Path(preset) / "config.json").is_file():
            raise BackboneError(
                f"backbone.name: {preset} is a folder without config.json; a text backbone folder "
                "is a KerasHub preset (save_to_preset) or a Hugging Face model folder"
            )
        return preset
    if not is_hub_preset(preset):
        raise BackboneError(
            f"backbone.name {preset!r} is not a text backbone: use `text_rnn`, a KerasHub preset "
            "name (e.g. bert_tiny_en_uncased), hf://..., kaggle://..., or a local preset folder"
        )
    fetch_check(preset)  # remote: fail within seconds when offline, not after a retry loop
    return preset


def _preprocessor(source: str, sequence_length: int):
    """The family's TextClassifierPreprocessor at `sequence_length` (really applied)."""
    import keras_hub

    models = keras_hub.models
    try:
        pre = models.TextClassifierPreprocessor.from_preset(source, sequence_length=sequence_length)
    except ValueError:  # families without a classifier preprocessor (e.g. ELECTRA)
        tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(source)
        pre = models.TextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    pre.sequence_length = sequence_length
    return pre


def _assemble(hub, preprocessor, name: str, pooling: str | None, lora_rank: int | None):
    family = type(hub).__name__
    if "token_ids" not in hub.input:
        raise BackboneError(f"backbone.name {name!r}: {family} is not a text backbone")
    max_len = getattr(hub, "max_sequence_length", None)
    if max_len and preprocessor.sequence_length > max_len:
        raise BackboneError(
            f"backbone.sequence_length {preprocessor.sequence_length} is longer than {family}'s "
            f"{max_len} positions; use at most {max_len}"
        )
    pooling = pooling or ("pooled" if family in _POOLED_FAMILIES else "cls")
    if pooling not in POOLINGS:
        raise BackboneError(f"backbone.kwargs.pooling {pooling!r}: use one of {POOLINGS}")
    features = _pool(hub, pooling)
    model = keras.Model(hub.input, features, name=f"{hub.name}_features")
    if lora_rank:
        hub.enable_lora(lora_rank)
    groups = lora_groups(model) if lora_rank else layer_groups(model)
    return HubTextBackbone(
        name=name,
        model=model,
        groups=groups,
        preprocessor=preprocessor,
        sequence_length=preprocessor.sequence_length,
        hub=hub,
        preset=name,
        pooling=pooling,
        lora_rank=lora_rank,
        info={"source": "keras_hub", "class": family, "features": int(features.shape[-1])},
    )


def _pool(hub, pooling: str):
    outputs = hub.output
    sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    if pooling == "pooled":
        if not isinstance(outputs, dict) or "pooled_output" not in outputs:
            raise BackboneError(
                f"backbone.kwargs.pooling: {type(hub).__name__} has no pooled output; "
                "use `cls` or `mean`"
            )
        return outputs["pooled_output"]
    if pooling == "cls":
        index = getattr(hub, "start_token_index", None) or getattr(hub, "cls_token_index", 0)
        return TokenPooling(int(index or 0), name="cls_pooling")(sequence)
    return MaskedMeanPooling(name="mean_pooling")(sequence, hub.input["padding_mask"])
