"""The file extensions tltk reads, in one place (training, `tltk predict` and the docs agree)."""

from __future__ import annotations

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
"""Image files (matched case-insensitively): the formats `tf.io.decode_image` decodes. A folder
source trains on these and `tltk predict` on a folder reads the same ones."""

JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")
"""Text files read as one JSON object per line."""

TSV_EXTENSIONS = (".tsv", ".tab")
"""Text files read as tab-separated values (.csv is comma-separated; others are sniffed)."""
