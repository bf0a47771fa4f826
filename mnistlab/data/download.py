"""Download a file from a list of mirrors, verify its MD5, and only then move it into place."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from mnistlab.errors import DataError

MIRRORS_ENV = "MNISTLAB_MIRRORS"  # comma-separated base URLs that replace every built-in mirror list
_CHUNK = 1 << 16


def md5sum(path: str | Path) -> str:
    """The hex MD5 of a file (a checksum for data integrity, not security)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def mirrors_from_env(default: Sequence[str]) -> list[str]:
    """`$MNISTLAB_MIRRORS` split on commas when it is set, else `default`."""
    env = os.environ.get(MIRRORS_ENV, "")
    return [m.strip() for m in env.split(",") if m.strip()] or list(default)


def _url(base: str, filename: str) -> str:
    return base.rstrip("/") + "/" + filename


def _fetch(url: str, part: Path, timeout: float, desc: str) -> str:
    """Stream `url` into `part` with a progress bar; return the MD5 of what was received."""
    digest = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=total, desc=desc, unit="B", unit_scale=True, leave=False, disable=None) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client returns a short body silently when the server hangs up early.
    if total is not None and received != total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")
    return digest.hexdigest()


def download_file(
    filename: str, md5: str, mirrors: Sequence[str], dest_dir: Path, timeout: float = 5.0
) -> Path:
    """Download `filename` into `dest_dir`, trying each mirror (a base URL) in order until one verifies.

    `$MNISTLAB_MIRRORS`, when set, replaces `mirrors`. Each attempt streams into a private part file that
    is renamed to `dest_dir/filename` only once its MD5 matches, so an existing file there is never
    touched by a failed download. `timeout` bounds each connect and each read, so a machine without
    network gives up in seconds. Raises DataError naming every mirror's failure.
    """
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create {dest_dir} ({e.strerror or e}); set MNISTLAB_DATA to a writable directory"
        ) from None
    dest = dest_dir / filename
    part = dest_dir / f"{filename}.part-{os.getpid()}"
    failures = []
    for base in mirrors_from_env(mirrors):
        try:
            actual = _fetch(_url(base, filename), part, timeout, filename)
            if actual == md5:
                os.replace(part, dest)
                return dest
            failures.append(f"{base}: MD5 mismatch (got {actual}, expected {md5})")
        except (OSError, ValueError, http.client.HTTPException) as e:
            failures.append(f"{base}: {_reason(e)}")
        finally:
            part.unlink(missing_ok=True)
    raise DataError(
        f"could not download {filename} ({'; '.join(failures) or 'no mirrors'}); check the network, "
        f"set {MIRRORS_ENV} to reachable mirrors, or copy the file into {dest_dir}"
    )


def _reason(e: Exception) -> str:
    """A short, one-line reason for a failed attempt."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        if not isinstance(e.reason, Exception):
            return str(e.reason)
        e = e.reason
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(text.split())
