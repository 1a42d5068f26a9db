"""Downloading MHEALTH, against a local HTTP server on 127.0.0.1 (no test leaves the machine)."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyhar.cli import main
from tinyhar.data.download import (
    MHEALTH_URL,
    default_data_dir,
    default_url,
    download_mhealth,
    is_downloaded,
    parse_checksums,
    published_checksums,
)
from tinyhar.data.mhealth import load_mhealth
from tinyhar.errors import TinyharError


def _log(subject: int, rows: int = 400) -> bytes:
    lines = []
    for i in range(rows):
        values = [f"{(subject * 0.37 + i * 0.011 + c * 0.1) % 10 - 5:.5g}" for c in range(23)]
        lines.append("\t".join(values) + f"\t{(i // 50) % 13}\n")
    return "".join(lines).encode()


LOGS = {f"mHealth_subject{s}.log": _log(s) for s in (1, 2, 3)}
SUMS = {name: hashlib.sha256(body).hexdigest() for name, body in LOGS.items()}


def _zip(logs: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("MHEALTHDATASET/README.txt", "MHEALTH dataset")
        for name, body in logs.items():
            zf.writestr(f"MHEALTHDATASET/{name}", body)
    return buf.getvalue()


GOOD = _zip(LOGS)
TAMPERED = _zip({**LOGS, "mHealth_subject2.log": LOGS["mHealth_subject2.log"][:-2] + b"9\n"})


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).requests.append(self.path)
        if self.path in ("/good.zip", "/tampered.zip"):
            body = GOOD if self.path == "/good.zip" else TAMPERED
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/cut.zip":  # announces the whole zip, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/stall.zip":  # starts, then goes silent
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[:100])
            self.wfile.flush()
            time.sleep(1.0)
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_download_verifies_and_writes_logs(server, tmp_path):
    dest = tmp_path / "cache" / "mhealth"
    out = download_mhealth(dest, url=f"{server}/good.zip", checksums=SUMS, progress=False)
    assert out == dest
    assert {n: (dest / n).read_bytes() for n in LOGS} == LOGS
    assert parse_checksums((dest / "SHA256SUMS").read_text()) == SUMS
    assert is_downloaded(dest, SUMS)
    data = load_mhealth(dest)
    assert [r.subject for r in data.recordings] == [1, 2, 3] and not data.synthetic
    assert sorted(p.name for p in dest.parent.iterdir()) == ["mhealth"]  # no temp zip left


def test_second_call_is_a_no_op(server, tmp_path):
    dest = tmp_path / "m"
    download_mhealth(dest, url=f"{server}/good.zip", checksums=SUMS, progress=False)
    before = [p.stat().st_mtime_ns for p in sorted(dest.iterdir())]
    n = len(_Handler.requests)
    download_mhealth(dest, url=f"{server}/good.zip", checksums=SUMS, progress=False)
    assert len(_Handler.requests) == n  # no request at all
    assert [p.stat().st_mtime_ns for p in sorted(dest.iterdir())] == before


def test_corrupt_copy_is_replaced(server, tmp_path):
    dest = tmp_path / "m"
    download_mhealth(dest, url=f"{server}/good.zip", checksums=SUMS, progress=False)
    (dest / "mHealth_subject3.log").write_bytes(b"1 2 3\n")
    assert not is_downloaded(dest, SUMS)
    download_mhealth(dest, url=f"{server}/good.zip", checksums=SUMS, progress=False)
    assert (dest / "mHealth_subject3.log").read_bytes() == LOGS["mHealth_subject3.log"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    dest = tmp_path / "m"
    with pytest.raises(TinyharError, match=r"mHealth_subject2\.log: SHA-256 .* differs"):
        download_mhealth(dest, url=f"{server}/tampered.zip", checksums=SUMS, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_connection_cut_halfway_leaves_nothing(server, tmp_path):
    dest = tmp_path / "m"
    with pytest.raises(TinyharError, match="cut after") as e:
        download_mhealth(dest, url=f"{server}/cut.zip", checksums=SUMS, progress=False)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_stalled_server_times_out(server, tmp_path):
    t = time.perf_counter()
    with pytest.raises(TinyharError, match=r"stalled for 0\.3 s after 0\.0 MB"):
        download_mhealth(
            tmp_path / "m", url=f"{server}/stall.zip", checksums=SUMS, progress=False, timeout=0.3
        )
    assert time.perf_counter() - t < 1.0
    assert list(tmp_path.iterdir()) == []


def test_failure_never_destroys_an_earlier_verified_copy(server, tmp_path):
    dest = tmp_path / "m"
    download_mhealth(dest, url=f"{server}/good.zip", checksums=SUMS, progress=False)
    before = _tree(dest)
    other_sums = {**SUMS, "mHealth_subject1.log": "0" * 64}  # forces a fresh download
    for url in (f"{server}/cut.zip", f"{server}/tampered.zip", f"{server}/nothing-here.zip"):
        with pytest.raises(TinyharError):
            download_mhealth(dest, url=url, checksums=other_sums, progress=False)
        assert _tree(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_refuses_a_folder_of_other_files(server, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TinyharError, match="holds files other than MHEALTH logs"):
        download_mhealth(tmp_path, url=f"{server}/good.zip", checksums=SUMS, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(
    "path, expect",
    [
        ("/cut.zip", "was cut after"),
        ("/nothing-here.zip", "HTTP 404"),
        (None, "cannot reach 127.0.0.1:"),
        ("ftp//nowhere", "invalid download URL 'ftp//nowhere'"),
    ],
)
def test_cli_download_failures_are_one_line(server, tmp_path, monkeypatch, path, expect):
    monkeypatch.setenv("TINYHAR_CACHE", str(tmp_path / "cache"))
    url = f"{server}{path}" if path else f"http://127.0.0.1:{_closed_port()}/m.zip"
    if path and not path.startswith("/"):
        url = path
    r = CliRunner().invoke(main, ["data", "download", "--url", url])
    assert r.exit_code == 2
    assert "Traceback" not in r.output + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0]
    assert "--url" in lines[0] or "http(s)" in lines[0]
    assert not (tmp_path / "cache" / "mhealth").exists()


def test_cli_url_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYHAR_MHEALTH_URL", f"{server}/nothing-here.zip")
    r = CliRunner().invoke(main, ["data", "download", "--dest", str(tmp_path / "d")])
    assert r.exit_code == 2 and "nothing-here.zip" in r.stderr


def test_cli_says_when_nothing_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYHAR_CACHE", str(tmp_path))
    monkeypatch.setattr("tinyhar.data.download.published_checksums", lambda: SUMS)
    dest = default_data_dir()
    dest.mkdir(parents=True)
    for name, body in LOGS.items():
        (dest / name).write_bytes(body)
    dead = f"http://127.0.0.1:{_closed_port()}/m.zip"  # would fail if anything were fetched
    r = CliRunner().invoke(main, ["data", "download", "--url", dead])
    assert r.exit_code == 0, r.stderr
    assert "nothing to do" in r.output and str(dest) in r.output
    (dest / "mHealth_subject1.log").write_bytes(b"0 1\n")  # now it must try, and fail
    r = CliRunner().invoke(main, ["data", "download", "--url", dead])
    assert r.exit_code == 2 and "cannot reach" in r.stderr
    assert (dest / "mHealth_subject1.log").read_bytes() == b"0 1\n"


def test_cache_locations_and_published_list(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYHAR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "tinyhar" / "mhealth"
    monkeypatch.setenv("TINYHAR_CACHE", str(tmp_path / "c"))
    assert default_data_dir() == tmp_path / "c" / "mhealth"
    monkeypatch.delenv("TINYHAR_MHEALTH_URL", raising=False)
    assert default_url() == MHEALTH_URL
    sums = published_checksums()
    assert sorted(sums) == sorted(f"mHealth_subject{s}.log" for s in range(1, 11))
    assert sums["mHealth_subject1.log"].startswith("da8d1bbf644a2068")
    assert sums["mHealth_subject10.log"].startswith("382d3d7b58e1fe24")


def test_unwritable_destination_is_one_line(server, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(TinyharError, match="cannot write into") as e:
        download_mhealth(
            tmp_path / "file.txt" / "m", url=f"{server}/good.zip", checksums=SUMS, progress=False
        )
    assert "\n" not in str(e.value)
