"""Atomic writes: a failed or interrupted run never leaves a half-written artifact."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# TEST HOOK: with this set to N, the process SIGKILLs itself right after its Nth file write or
# removal through this module, so tests can check what a crash at every such moment leaves.
KILL_AFTER_WRITES = "TINYHAR_TEST_KILL_AFTER_WRITES"
_done = 0


def _written() -> None:
    """Count a finished write or removal (the test hook's kill point)."""
    global _done
    n = os.environ.get(KILL_AFTER_WRITES)
    if not n:
        return
    _done += 1
    if _done == int(n):
        os.kill(os.getpid(), signal.SIGKILL)


def remove(path: str | os.PathLike) -> bool:
    """Remove a file or a folder tree if it is there; True when something was removed."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        return False
    _written()
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _written()
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write pretty JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for a writer that wants a filename; rename it to `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    tmp = tmpdir / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    _written()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`'s lock file (.<name>.lock beside it)."""
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def append_json_line(path: str | os.PathLike, obj: Any) -> Path:
    """Append `obj` as one JSON line to `path`, in one write on an O_APPEND descriptor under the
    file's lock, so concurrent writers interleave whole lines."""
    path = Path(path)
    line = (json.dumps(obj, sort_keys=False) + "\n").encode("utf-8")
    with _locked(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    return path


def put_json_line(path: str | os.PathLike, obj: Any, key: str) -> Path:
    """The JSON-lines file `path` with the line whose `key` equals obj[key] replaced by `obj`,
    or `obj` appended when there is none; rewritten atomically under the file's lock."""
    path = Path(path)
    with _locked(path):
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        new = json.dumps(obj, sort_keys=False)
        for i, text in enumerate(lines):
            try:
                same = json.loads(text).get(key) == obj[key]
            except (ValueError, AttributeError):
                same = False
            if same:
                lines[i] = new
                break
        else:
            lines.append(new)
        atomic_write_text(path, "".join(f"{ln}\n" for ln in lines))
    return path


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file the project wrote."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
