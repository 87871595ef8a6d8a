"""The one network probe: it answers even while a connection attempt (a DNS lookup) hangs."""

from __future__ import annotations

import socket
import threading

import pytest

from tltk import net


def test_a_hanging_lookup_reads_as_unreachable(monkeypatch):
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def hang(address, timeout=None):  # a resolver that ignores the socket timeout
        started.set()
        release.wait(60)
        finished.set()
        raise OSError("name resolution timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    assert net.reachable("example.invalid", timeout=0.05) is False
    # It answered while the attempt still hung: without the guard it would wait for `release`.
    assert started.is_set() and not finished.is_set()
    release.set()


def test_reachable_and_require_network(monkeypatch):
    class Connection:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: Connection())
    assert net.reachable("example.org") is True
    net.require_network("example.org", what="a preset", fix="unused")

    def refuse(address, timeout=None):
        raise ConnectionRefusedError(111, "refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(
        ConnectionError, match=r"cannot reach example.org to fetch a preset .* Copy"
    ):
        net.require_network("example.org", what="a preset", fix="Copy it here.")
