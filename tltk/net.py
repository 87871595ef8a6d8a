"""Fail fast without a network instead of hanging in a downloader's retry loop."""

from __future__ import annotations

import socket


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_network(host: str, *, what: str, fix: str, timeout: float = 3.0) -> None:
    """Raise ConnectionError within `timeout` seconds if `host` cannot be reached.

    `what` names what was requested, `fix` says how to pass a local copy instead.
    """
    if not reachable(host, timeout=timeout):
        raise ConnectionError(f"cannot reach {host} to fetch {what} (no network?). {fix}")
