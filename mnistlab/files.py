"""Writing files so that nothing is lost: atomic writes (a crash leaves the old file or the new, never half
of one) and a writability check before a long job starts. No torch: the data, plots, exports and run
directories all write through here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mnistlab.errors import MnistlabError, one_line

_UMASK = os.umask(0o22)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: a crash leaves the old file or the new."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, a read-only or vanished directory: one clear line, old file kept
            kept = "; the previous file is intact" if path.exists() else ""
            raise MnistlabError(f"cannot write {path}: {e.strerror or one_line(e)}{kept}") from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def check_writable(directory: str | Path, need_bytes: int = 50 * 2**20) -> Path:
    """Create `directory` if needed and fail fast when it cannot be written or the disk is nearly full."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-")
        probe.close()
    except OSError as e:
        raise MnistlabError(f"cannot write to {directory}: {e.strerror or e}; choose another --out") from None
    free = shutil.disk_usage(directory).free
    if free < need_bytes:
        raise MnistlabError(
            f"only {free / 2**20:.0f} MiB free at {directory}; a run needs about {need_bytes / 2**20:.0f} MiB"
        )
    return directory

