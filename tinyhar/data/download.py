"""Download MHEALTH from the UCI repository, verify every log by SHA-256, keep it in the user cache.

The checksums (mhealth_sha256.txt) are the published SHA-256 of the original UCI logs. Mirrors can
stand in for the UCI server through `--url` or the TINYHAR_MHEALTH_URL environment variable.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import IO

from tqdm import tqdm

from tinyhar.errors import TinyharError
from tinyhar.files import atomic_path
from tinyhar.resources import cache_dir, package_data

MHEALTH_URL = "https://archive.ics.uci.edu/static/public/319/mhealth+dataset.zip"
URL_ENV = "TINYHAR_MHEALTH_URL"
CHECKSUMS_FILE = "mhealth_sha256.txt"
_CHUNK = 1 << 20
_MIRROR_HINT = f"try again later, or point --url (or {URL_ENV}) at a mirror of the UCI zip"


def default_data_dir() -> Path:
    """Where `tinyhar data download` puts the verified folder of MHEALTH logs."""
    return cache_dir() / "mhealth"


def default_url() -> str:
    """The UCI zip, unless TINYHAR_MHEALTH_URL names a mirror."""
    return os.environ.get(URL_ENV) or MHEALTH_URL


def published_checksums() -> dict[str, str]:
    """File name -> SHA-256 hex of the original UCI logs, from the list shipped with tinyhar."""
    return parse_checksums(package_data(CHECKSUMS_FILE).read_text(encoding="utf-8"))


def parse_checksums(text: str) -> dict[str, str]:
    """Parse `sha256sum` output ('<hex>  <name>' per line)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def is_downloaded(dest: Path | None = None, checksums: dict[str, str] | None = None) -> bool:
    """True when `dest` holds every log with the published SHA-256."""
    dest = Path(dest) if dest else default_data_dir()
    checksums = checksums if checksums is not None else published_checksums()
    if not dest.is_dir():
        return False
    for name, expected in checksums.items():
        f = dest / name
        if not f.is_file():
            return False
        with open(f, "rb") as fh:
            if _sha256(fh) != expected:
                return False
    return True


def download_mhealth(
    dest: Path | None = None,
    url: str | None = None,
    checksums: dict[str, str] | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Fetch the MHEALTH zip, verify every log, and write the folder of logs to `dest` atomically.

    Does nothing when `dest` already holds a verified copy; on any failure `dest` is left as it was.
    """
    dest = Path(dest).expanduser() if dest else default_data_dir()
    url = url or default_url()
    checksums = checksums if checksums is not None else published_checksums()
    if is_downloaded(dest, checksums):
        return dest
    if dest.exists() and not _replaceable(dest):
        raise TinyharError(
            f"{dest} exists and holds files other than MHEALTH logs; choose another --dest"
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".zip")
    except OSError as e:
        raise TinyharError(
            f"cannot write into {dest.parent} ({e.strerror}); choose --dest"
        ) from None
    tmp_zip = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, progress, timeout)
        with atomic_path(dest) as staging:
            staging.mkdir()
            _extract_verified(tmp_zip, staging, checksums, url)
    except OSError as e:
        raise TinyharError(
            f"cannot write {dest} ({e.strerror}); free some space or choose --dest"
        ) from None
    finally:
        tmp_zip.unlink(missing_ok=True)
    return dest


def _write(out: IO[bytes], chunk: bytes) -> None:
    try:
        out.write(chunk)
    except OSError as e:
        raise TinyharError(f"cannot store the download ({e.strerror}); free some space") from None


def _fetch(url: str, out: IO[bytes], progress: bool, timeout: float) -> int:
    """Stream `url` into `out` with a progress bar; every network failure becomes one line."""

    host = urllib.parse.urlsplit(url).netloc or url
    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise TinyharError(f"invalid download URL '{url}'; give an http(s) URL of the MHEALTH zip")
    request = urllib.request.Request(url, headers={"User-Agent": "tinyhar"})
    received, expected = 0, None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="MHEALTH",
                file=sys.stderr,
                disable=None if progress else True,
            ) as bar:
                while chunk := resp.read(_CHUNK):
                    _write(out, chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise TinyharError(
            f"download failed: HTTP {e.code} {e.reason} from {url}; {_MIRROR_HINT}"
        ) from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError):
            raise TinyharError(
                f"{host} did not answer within {timeout:g} s; {_MIRROR_HINT}"
            ) from None
        raise TinyharError(
            f"cannot reach {host} ({reason}); check the network or {_MIRROR_HINT}"
        ) from None
    except TimeoutError:
        raise TinyharError(
            f"download from {host} stalled for {timeout:g} s after {_mb(received)}; {_MIRROR_HINT}"
        ) from None
    except (http.client.HTTPException, ConnectionError, OSError) as e:
        raise TinyharError(
            f"connection to {host} lost after {_mb(received)} ({type(e).__name__}); {_MIRROR_HINT}"
        ) from None
    except ValueError as e:
        raise TinyharError(f"invalid download URL '{url}' ({e}); give an http(s) URL") from None
    if expected is not None and received < expected:
        raise TinyharError(
            f"connection to {host} was cut after {_mb(received)} of {_mb(expected)}; "
            f"nothing was written; {_MIRROR_HINT}"
        )
    return received


def _extract_verified(zip_path: Path, folder: Path, checksums: dict[str, str], url: str) -> None:
    """Write each expected log from the zip into `folder`, checking its SHA-256 on the way."""
    if not zipfile.is_zipfile(zip_path):
        raise TinyharError(f"the file from {url} is not a zip; {_MIRROR_HINT}")
    with zipfile.ZipFile(zip_path) as zf:
        inner = _zip_with_logs(zf, set(checksums))
        members = {Path(n).name: n for n in inner.namelist() if Path(n).name in checksums}
        for name, expected in sorted(checksums.items()):
            if name not in members:
                raise TinyharError(
                    f"the zip from {url} lacks {name}; is it the UCI MHEALTH zip? {_MIRROR_HINT}"
                )
            with inner.open(members[name]) as src, open(folder / name, "wb") as dst:
                got = _sha256(src, dst)
            if got != expected:
                raise TinyharError(
                    f"{name}: SHA-256 {got[:16]}... differs from the published {expected[:16]}...; "
                    f"the download is corrupt or not the UCI data, nothing was written"
                )
    (folder / "SHA256SUMS").write_text(
        "".join(f"{checksums[n]}  {n}\n" for n in sorted(checksums)), encoding="utf-8"
    )


def _zip_with_logs(zf: zipfile.ZipFile, names: set[str]) -> zipfile.ZipFile:
    """The zip itself, or a zip inside it that holds the logs (some mirrors wrap it once more)."""
    if any(Path(n).name in names for n in zf.namelist()):
        return zf
    for n in zf.namelist():
        if n.lower().endswith(".zip"):
            inner = zipfile.ZipFile(io.BytesIO(zf.read(n)))
            if any(Path(m).name in names for m in inner.namelist()):
                return inner
    return zf


def _replaceable(dest: Path) -> bool:
    """An old, incomplete or corrupt copy may be replaced; a folder of other files may not."""
    if not dest.is_dir():
        return False
    return all(
        f.name.startswith("mHealth_subject") or f.name in ("SHA256SUMS", "README.txt")
        for f in dest.iterdir()
    )


def _sha256(src: IO[bytes], copy_to: IO[bytes] | None = None) -> str:
    h = hashlib.sha256()
    while chunk := src.read(_CHUNK):
        h.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return h.hexdigest()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
