"""Shared fixtures. Plain helpers live in tests/helpers.py (`from helpers import ...`)."""

from __future__ import annotations

import pytest
from helpers import make_image_folder


@pytest.fixture
def image_folder(tmp_path):
    """A tiny class-folder dataset: tmp/images/{cat,dog}/0..5.png, 16x16 RGB."""
    return make_image_folder(tmp_path / "images")
