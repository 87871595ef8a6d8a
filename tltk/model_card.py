"""The model card written beside an export: what the model is, how to call it, how it was made.

`model_card.json` holds `build_card`'s dict; `model_card.md` is `card_markdown` of it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib import metadata

RESERVED_KEYS = {"name", "version", "exported_at", "signatures", "libraries", "parity"}
"""Keys the export writes (tltk.json's keys too); a trainer's `card` may not use them."""


def build_card(
    name: str, version: int, meta: dict, signatures: dict, parity: dict | None, card: dict
) -> dict:
    """The card's content: identity, tltk.json's facts, signatures, library versions, parity,
    then the trainer's `card` (recipe, metrics, data summary, ...)."""
    doc = {
        "name": name,
        "version": version,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{k: v for k, v in meta.items() if k not in ("signature", "input")},
        "signatures": signatures,
        "libraries": library_versions(),
        "parity": parity,
    }
    return {**doc, **card}


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for dist in ("tltk", "tensorflow", "keras", "keras-hub", "tensorflow-text"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def card_markdown(doc: dict) -> str:
    """The card as Markdown: nested values as JSON blocks, flat ones as lists."""
    lines = [
        f"# {doc['name']} (version {doc['version']})",
        "",
        f"A {doc['task']} {doc['kind']} model exported by tltk on {doc['exported_at']}.",
    ]
    for key, value in doc.items():
        if key in ("name", "version", "task", "kind", "exported_at"):
            continue
        lines += ["", f"## {key.replace('_', ' ').capitalize()}", ""]
        if key == "signatures":
            lines += ["| signature | | name | type and meaning |", "|---|---|---|---|"]
            for sig, io in value.items():
                lines += [f"| `{sig}` | input | `{k}` | {v} |" for k, v in io["inputs"].items()]
                lines += [f"| `{sig}` | output | `{k}` | {v} |" for k, v in io["outputs"].items()]
        elif key == "parity" and value:
            lines.append(f"Parity check {parity_text(value)}.")
        elif key == "lineage" and value:
            lines += lineage_table(value)
        elif value is None or isinstance(value, str | int | float):
            lines.append("not recorded" if value is None else str(value))
        elif isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
            lines.append(", ".join(map(str, value)) or "none")
        elif isinstance(value, dict) and not any(
            isinstance(v, dict | list) for v in value.values()
        ):
            lines += [f"- {k}: {v}" for k, v in value.items()]
        else:
            lines += ["```json", json.dumps(value, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"


def lineage_table(lineage: list[dict]) -> list[str]:
    """The runs a continued model came from, oldest first: the classes each step added and
    its test accuracies (old classes before and after the step, new classes, overall)."""

    def cell(value) -> str:
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = [
        "| step | run | classes added | strategy | old before | old after | forgetting | new "
        "| overall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in lineage:
        added = ", ".join(s["new_classes"]) if s["step"] else f"{len(s['classes'])} (first run)"
        values = [s.get(k) for k in ("old_before", "old_after", "forgetting", "new", "overall")]
        strategy = "+".join(s.get("strategy", [])) or "-"
        lines.append(
            f"| {s['step']} | `{s['run']}` | {added} | {strategy} | "
            + " | ".join(cell(v) for v in values)
            + " |"
        )
    return lines


def parity_text(parity: dict) -> str:
    return (
        f"{'passed' if parity['passed'] else 'FAILED'}: max |SavedModel - Keras model| = "
        f"{parity['max_abs_diff']:.3g} (tolerance {parity['tolerance']}) on {parity['n']} "
        f"examples, the SavedModel run by a fresh process importing only "
        f"{', '.join(parity['child_imports'])}"
    )
