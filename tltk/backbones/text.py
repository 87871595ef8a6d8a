"""Text backbones: any KerasHub text preset (BERT, DistilBERT, RoBERTa, DeBERTaV3, ALBERT,
ELECTRA, ...) or the from-scratch `text_rnn`, behind one `Backbone` contract.

A KerasHub backbone becomes a functional model from its token inputs (token_ids, padding_mask,
maybe segment_ids) to pooled features [B, hidden]. Its groups are `embeddings`, `layer_0` ...
`layer_{N-1}` (one per encoder layer) and `pooler`/`top` when the family has weights after the
encoder, so `top:2` means the top two encoder layers and layer-wise LR decay is per layer.

The tokenizer is the family's `TextClassifierPreprocessor`, built with the recipe's
`sequence_length` (a classifier's `from_preset` would ignore it). With `lora_rank`, LoRA is
enabled on the attention query/value projections and the groups hold only those layers, so a
phase trains the LoRA factors (and the head) while every base weight stays frozen.

A finished run keeps what is needed to rebuild the backbone offline, without the original preset:
`save_text_assets` writes `text_backbone/` (config, tokenizer or vocabulary, LoRA factors) and
`load_text_backbone` rebuilds from it; the caller then loads the run's model weights.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import keras

from tltk.backbones.base import Backbone, BackboneError, lookup
from tltk.backbones.text_rnn import build_text_rnn
from tltk.compat import sublayers
from tltk.io import atomic_directory
from tltk.recipe import BackboneConfig

ASSETS_DIR = "text_backbone"
"""Sub-folder of a run with the text backbone's config, tokenizer/vocabulary and LoRA factors."""
META_FILE = "tltk_text.json"
LORA_FILE = "backbone.lora.h5"  # keras-hub's save_lora_weights insists on `.lora.h5`
VOCAB_FILE = "vocabulary.txt"
POOLINGS = ("pooled", "cls", "mean")
# What KerasHub's own TextClassifier feeds its head, per family: the pooled (tanh dense) CLS
# output where the family has one (BERT, ALBERT, FNet), else the first token's hidden state.
_POOLED_FAMILIES = ("BertBackbone", "AlbertBackbone", "FNetBackbone")
_OWN_WEIGHTS = (None, "imagenet", "preset")  # recipe values meaning "the preset's own weights"


def build_text_backbone(
    cfg: BackboneConfig, *, train_texts=None, pooling: str | None = None, **kwargs
) -> Backbone:
    """The text backbone a recipe names.

    `cfg.name`: `text_rnn`, a KerasHub preset name (keras-nlp names are the same), `hf://...`,
    `kaggle://...` or a local preset folder (KerasHub or Hugging Face layout). `cfg.weights`:
    the preset's own (default), `none` (random init) or a local preset folder to load instead.
    `pooling` (`pooled`|`cls`|`mean`, a `backbone.kwargs` key) overrides the family default;
    other kwargs go to `from_preset` (hub) or to `build_text_rnn`.
    """
    spec = lookup(cfg.name)
    if spec is not None:
        if spec.family != "text":
            raise BackboneError(
                f"backbone.name {cfg.name!r} is an image backbone; text runs need `text_rnn` or "
                "a KerasHub text preset (e.g. a BERT folder)"
            )
        if cfg.lora_rank:
            raise BackboneError("backbone.lora_rank: LoRA applies to KerasHub transformers only")
        try:
            return spec.build(
                cfg.weights,
                None,
                sequence_length=cfg.sequence_length,
                train_texts=train_texts,
                **kwargs,
            )
        except TypeError as e:
            raise BackboneError(f"backbone.kwargs for {cfg.name}: {e}") from None
    return build_hub_text(
        cfg.name,
        cfg.weights,
        cfg.sequence_length,
        lora_rank=cfg.lora_rank,
        pooling=pooling,
        **kwargs,
    )


def build_hub_text(
    preset: str,
    weights: str | None,
    sequence_length: int,
    *,
    lora_rank: int | None = None,
    pooling: str | None = None,
    **kwargs,
) -> Backbone:
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
    return Backbone(
        name=name,
        model=model,
        groups=groups,
        preprocessor=preprocessor,
        info={
            "source": "keras_hub",
            "class": family,
            "preset": name,
            "pooling": pooling,
            "lora_rank": lora_rank,
            "sequence_length": preprocessor.sequence_length,
            "features": int(features.shape[-1]),
            "keras_hub_backbone": hub,
        },
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


class TokenPooling(keras.layers.Layer):
    """The hidden state of one token (the CLS token) of a [B, T, C] sequence: [B, C]."""

    def __init__(self, index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, sequence):
        return sequence[:, self.index, :]

    def get_config(self):
        return {**super().get_config(), "index": self.index}


class MaskedMeanPooling(keras.layers.Layer):
    """The mean over real (non-padding) tokens: what sentence-embedding models were trained on."""

    def call(self, sequence, padding_mask):
        mask = keras.ops.cast(padding_mask, sequence.dtype)[..., None]
        total = keras.ops.sum(sequence * mask, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


# --------------------------------------------------------------------------- groups

_ENCODER_LAYER = [
    re.compile(r"^group_(\d+)_inner_layer_\d+$"),  # ALBERT: shared layers per group
    re.compile(r"_layer_(\d+)$"),  # transformer_layer_3, f_net_layer_3, ..._encoder_layer_3
]


def _encoder_index(name: str) -> int | None:
    for rx in _ENCODER_LAYER:
        m = rx.search(name)
        if m:
            return int(m.group(1))
    return None


def layer_groups(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """embeddings, layer_0 .. layer_{N-1}, then pooler (pooled_dense) / top, in graph order.

    Layers without weights join the group before them, so no group is weightless.
    """
    groups: dict[str, list[keras.layers.Layer]] = {}
    current, seen_encoder = "embeddings", False
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        index = _encoder_index(layer.name)
        if index is not None:
            current, seen_encoder = f"layer_{index}", True
        elif "pool" in layer.name and layer.weights:
            current = "pooler"
        elif seen_encoder and layer.weights and not current.startswith(("pooler", "top")):
            current = "top"
        groups.setdefault(current, []).append(layer)
    return groups


def lora_groups(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """Per encoder layer, only its LoRA-enabled projections (everything else stays frozen)."""
    groups = {}
    for name, layers in layer_groups(model).items():
        adapted = [
            sub
            for layer in layers
            for sub in sublayers(layer)
            if getattr(sub, "lora_enabled", False)
        ]
        if adapted:
            groups[name] = adapted
    if not groups:
        raise BackboneError("backbone.lora_rank: the backbone has no LoRA-capable layers")
    return groups


# --------------------------------------------------------------------------- save / restore


def save_text_assets(backbone: Backbone, run_dir: str | Path) -> Path:
    """Write RUN/text_backbone/: what `load_text_backbone` needs, offline (no model weights:
    those are the run's model.weights.h5)."""
    final = Path(run_dir) / ASSETS_DIR
    if final.exists():
        shutil.rmtree(final)
    info = backbone.info
    with atomic_directory(final) as tmp:
        meta = {"type": info["source"], "sequence_length": info["sequence_length"]}
        if info["source"] == "text_rnn":
            vocabulary = backbone.preprocessor.get_vocabulary()
            (tmp / VOCAB_FILE).write_text("".join(f"{w}\n" for w in vocabulary), encoding="utf-8")
            meta["config"] = info["config"]
        else:
            from keras_hub.src.utils.preset_utils import KerasPresetSaver

            hub = info["keras_hub_backbone"]
            # Config and metadata only: the weights are in the run's model.weights.h5.
            saver = KerasPresetSaver(str(tmp))
            saver._save_serialized_object(hub, config_file="config.json")
            saver._save_metadata(hub)
            backbone.preprocessor.save_to_preset(str(tmp))
            meta.update(pooling=info["pooling"], lora_rank=info["lora_rank"], preset=info["preset"])
            if info["lora_rank"]:
                hub.save_lora_weights(str(tmp / LORA_FILE))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return final


def load_text_backbone(cfg: BackboneConfig, run_dir: str | Path) -> Backbone:
    """Rebuild a finished run's text backbone from RUN/text_backbone/, offline.

    Weights are not loaded here (random init, LoRA factors restored): the caller loads the run's
    model.weights.h5 next. Keras saves a LoRA layer's kernel with its LoRA update merged in and
    zeroes the factors on load, so predictions match the trained model exactly.
    """
    folder = Path(run_dir) / ASSETS_DIR
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise BackboneError(
            f"{meta_path} not found: {run_dir} has no saved text backbone (was it trained by "
            "tltk with task: text, and did it finish?)"
        )
    meta = json.loads(meta_path.read_text())
    if meta["type"] == "text_rnn":
        vocabulary = (folder / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1]
        return build_text_rnn(
            None, sequence_length=meta["sequence_length"], vocabulary=vocabulary, **meta["config"]
        )
    import keras_hub

    hub = keras_hub.models.Backbone.from_preset(str(folder), load_weights=False)
    preprocessor = _preprocessor(str(folder), meta["sequence_length"])
    backbone = _assemble(hub, preprocessor, meta["preset"], meta["pooling"], meta["lora_rank"])
    if meta["lora_rank"]:
        hub.load_lora_weights(str(folder / LORA_FILE))
    return backbone
