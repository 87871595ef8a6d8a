"""The one error type of the data layer."""

from __future__ import annotations


class DataError(ValueError):
    """Data that cannot be trained on as given; the message names the file or class and the fix."""
