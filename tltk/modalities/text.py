"""Texts: CSV/TSV/JSONL files or tfds -> a text backbone whose tokenizer runs in tf.data and
inside the SavedModel, so `serving_default` takes raw UTF-8 strings.

The tokenizer is the backbone's (`TextBackbone.preprocessor`: a KerasHub
TextClassifierPreprocessor, or text_rnn's TextVectorization). It is applied to whole batches,
after batching, so it runs once per batch in parallel with training. A process that loads the
export must `import tensorflow_text` first (its ops); tltk.json lists it under "imports".
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import tensorflow as tf

from tltk.modalities.base import Endpoint, Modality, Preprocessor, label_flags


class TextPreprocessor(Preprocessor):
    """Raw strings [N] -> the text backbone's inputs, by its `tokenizer`."""

    kind = "text"
    example_kinds: ClassVar[tuple[str, ...]] = ("text",)
    imports = ("tensorflow", "tensorflow_text")

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @property
    def sequence_length(self) -> int | None:
        tokenizer = self.tokenizer
        length = getattr(tokenizer, "sequence_length", None)
        return length or tokenizer.get_config().get("output_sequence_length")

    def prepare_batch(self, texts: tf.Tensor):
        return self.tokenizer(texts)

    def __call__(self, texts: tf.Tensor):
        return self.tokenizer(texts)

    def endpoints(self, model) -> dict[str, Endpoint]:
        return {
            "serving_default": Endpoint(
                lambda texts: model(self(texts), training=False),
                tf.TensorSpec([None], tf.string, name="texts"),
                f"string [N]: raw UTF-8 texts, tokenized inside the model as in training (at "
                f"most {self.sequence_length} tokens each; longer texts are cut)",
            )
        }

    def export_meta(self) -> dict:
        return {"sequence_length": self.sequence_length}

    def tracked(self) -> tuple:
        if not self.tokenizer.built:  # an export tracks built layers only
            self.tokenizer(tf.constant([""]))
        return (self.tokenizer,)


class TextModality(Modality):
    name = "text"

    def load_data(self, cfg, *, seed, label_kind, report_path=None, min_classes=2):
        from tltk.data.text import load_text_data

        return load_text_data(
            cfg, report_path=report_path, seed=seed, min_classes=min_classes,
            **label_flags(label_kind),
        )  # fmt: skip

    def build_backbone(self, cfg, train):
        from tltk.backbones.text import build_text_backbone

        return build_text_backbone(cfg, train_texts=training_texts(train), **cfg.kwargs)

    def restore_backbone(self, cfg, run_dir):
        from tltk.backbones.text import load_text_backbone

        return load_text_backbone(run_dir)

    def preprocessor(self, backbone) -> TextPreprocessor:
        return TextPreprocessor(backbone.preprocessor)

    def save_run_assets(self, recipe, backbone, run_dir: Path) -> None:
        """RUN/text_backbone/: config, tokenizer or vocabulary, LoRA factors."""
        from tltk.backbones.text import save_text_assets

        save_text_assets(backbone, run_dir)

    def serving_examples(self, split, n: int) -> list[str]:
        return [str(t) for t in split.raw_examples(n)]


def training_texts(train):
    """The training split's texts for a backbone that learns a vocabulary: the array, or for a
    streamed split a tf.data.Dataset of them (never read into memory)."""
    if train is None or not train.streamed:
        return None if train is None else train.examples
    from tltk.data.record_stream import record_stream

    return record_stream(train, train.labels).map(lambda text, label: text)
