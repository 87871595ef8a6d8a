"""Test helpers for text: a tiny KerasHub BERT preset folder and tiny labelled text files."""

from __future__ import annotations

import csv
from pathlib import Path

WORDS = {
    "games": "game play level player puzzle arcade board card chess strategy",
    "sound": "audio music sound player mixer synth volume midi track record",
    "science": "data analysis physics chemistry biology genome model math lab plot",
}
"""Three classes, each with its own words: a tiny model can learn them in a few steps."""


def vocabulary() -> list[str]:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for ws in WORDS.values() for w in ws.split()})
    return special + words + ["a", "the", "for", "and", "with", "of", "tool", "library"]


def make_tiny_bert(
    folder: str | Path, *, num_layers: int = 2, sequence_length: int = 32, dropout: float = 0.1
) -> Path:
    """A 2-layer, 32-wide BERT with random weights + its tokenizer, saved as a KerasHub preset."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    folder = Path(folder)
    vocab = vocabulary()
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab),
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=64,
        dropout=dropout,
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )
    backbone.save_to_preset(str(folder))
    preprocessor.save_to_preset(str(folder))
    return folder


def texts(n_per_class: int = 8, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs; each text is 4-6 words of its class plus filler words."""
    import random

    rng = random.Random(seed)
    out = []
    for label, words in sorted(WORDS.items()):
        pool = words.split()
        for _ in range(n_per_class):
            chosen = rng.sample(pool, rng.randint(3, 5)) + [rng.choice(["a", "the", "tool"])]
            rng.shuffle(chosen)
            out.append((" ".join(chosen), label))
    return out


def write_csv(path: str | Path, rows: list[tuple], header=("text", "label"), delimiter=",") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path
