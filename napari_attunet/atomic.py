"""Writing files atomically, and removing what a killed writer left behind.

A file is written to a temporary file beside it, then renamed over it: a reader (or a
kill at any moment) sees the old file or the new one, never half of one.  The
temporary file's name says which file it is for and which process wrote it,
``.<name>.<host>-<pid>.<random>.tmp``, so that a later run can remove the ones whose
writer is gone without touching anything else.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    with atomic_writer(path) as file:
        file.write(data)


@contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` piece by piece; it replaces ``path`` only when the block ends
    without an error (a large table is streamed, never held whole in memory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=".tmp",
                                         dir=path.parent)
    try:
        os.chmod(temporary, 0o644)
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # no harmless existence probe: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or cannot tell
        return True
    return True


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files of :func:`atomic_write_bytes` for ``path`` whose writing process is gone.

    Only names of exactly that form, written on this host, count; a process that
    still runs (or a reused process id) keeps its file.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)\.[a-z0-9_]+\.tmp")
    found = []
    if not path.parent.is_dir():
        return found
    for candidate in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        match = pattern.fullmatch(candidate.name)
        if (match and match["host"] == _host() and candidate.is_file() and not candidate.is_symlink()
                and not _process_alive(int(match["pid"]))):
            found.append(candidate)
    return sorted(found)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove :func:`stale_temporaries` of ``path``; returns what was removed."""
    removed = []
    for candidate in stale_temporaries(path):
        try:
            candidate.unlink()
        except FileNotFoundError:  # another run removed it first
            continue
        removed.append(candidate)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)
