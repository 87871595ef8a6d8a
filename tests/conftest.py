"""Shared fixtures. Plain helpers live in tests/helpers.py (`from helpers import ...`)."""

from __future__ import annotations

import pytest
from helpers import make_image_folder


@pytest.fixture(autouse=True, scope="session")
def _private_check_cache(tmp_path_factory):
    """Tests never write into the user's check cache (~/.cache/tltk/checks.sqlite3), and
    subprocesses they start inherit the same private one."""
    import os

    path = tmp_path_factory.mktemp("check_cache") / "checks.sqlite3"
    before = os.environ.get("TLTK_CHECKS_CACHE")
    os.environ["TLTK_CHECKS_CACHE"] = str(path)
    yield path
    if before is None:
        os.environ.pop("TLTK_CHECKS_CACHE", None)
    else:
        os.environ["TLTK_CHECKS_CACHE"] = before


@pytest.fixture
def image_folder(tmp_path):
    """A tiny class-folder dataset: tmp/images/{cat,dog}/0..5.png, 16x16 RGB."""
    return make_image_folder(tmp_path / "images")
