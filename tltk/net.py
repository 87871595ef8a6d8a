"""The one network probe: fail fast without a network instead of hanging in a downloader's
retry loop (tfds datasets, KerasHub presets)."""

from __future__ import annotations

import socket
import threading


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Can a TCP connection to `host:port` be opened within about `timeout` seconds?

    The attempt runs in a daemon thread that we stop waiting for after `timeout` + 1 s: the
    DNS lookup inside `create_connection` is not bound by the socket timeout, and an offline
    machine's resolver can hang for minutes.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, name=f"tltk-probe-{host}", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result)


def require_network(host: str, *, what: str, fix: str, timeout: float = 3.0) -> None:
    """Raise ConnectionError within about `timeout` seconds if `host` cannot be reached.

    `what` names what was requested, `fix` says how to pass a local copy instead.
    """
    if not reachable(host, timeout=timeout):
        raise ConnectionError(f"cannot reach {host} to fetch {what} (no network?). {fix}")
