"""One run per output folder: a lock file with a heartbeat, safe on a shared filesystem.

The lock is a small JSON file (host, process id, start time, heartbeat time and a
random token).  It is created with a hard link from a complete temporary file, so
it appears whole or not at all, and only one of two racing runs gets it (``link``
fails when the name exists, also over NFS).  While the run lasts, a thread rewrites
the heartbeat every :data:`HEARTBEAT_INTERVAL` seconds.

A lock is **stale**, and the next run takes it over, when

* its host is this host and its process no longer exists, or
* its heartbeat is older than :data:`STALE_AFTER` seconds (the holder was killed on
  another machine, or is hung).  Hosts sharing a folder need clocks that agree to
  well within that time (NTP does).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .weights import atomic_write_bytes

HEARTBEAT_INTERVAL = 30.0
STALE_AFTER = 600.0


class LockHeld(RuntimeError):
    """Another live run holds the output folder."""


@dataclass
class LockInfo:
    host: str
    pid: int
    started: float
    heartbeat: float
    token: str

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        age = time.time() - self.heartbeat
        return f"process {self.pid} on {self.host}, started {started}, last heartbeat {age:.0f} s ago"


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def is_stale(info: LockInfo, now: float | None = None, host: str | None = None,
             stale_after: float = STALE_AFTER) -> bool:
    """The staleness rule: (same host and process gone) or (heartbeat older than ``stale_after``)."""
    now = time.time() if now is None else now
    host = socket.gethostname() if host is None else host
    if info.host == host and not process_alive(info.pid):
        return True
    return now - info.heartbeat > stale_after


def read_lock(path: Path) -> LockInfo | None:
    """The lock's contents; None when there is no lock.  A damaged lock file reads as long dead."""
    try:
        data = json.loads(path.read_bytes())
        return LockInfo(str(data["host"]), int(data["pid"]), float(data["started"]), float(data["heartbeat"]),
                        str(data["token"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return LockInfo("?", -1, 0.0, 0.0, "damaged")


class RunLock:
    """Hold ``path`` for one run: ``with RunLock(path): ...`` or ``acquire()`` / ``release()``.

    ``acquire`` raises :class:`LockHeld` when a live run holds it.  ``lost`` becomes
    True when another run took the lock over (this one was judged stale); the holder
    should then stop.
    """

    def __init__(self, path: str | os.PathLike, heartbeat_interval: float = HEARTBEAT_INTERVAL,
                 stale_after: float = STALE_AFTER):
        self.path = Path(path)
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        now = time.time()
        self.info = LockInfo(socket.gethostname(), os.getpid(), now, now, secrets.token_hex(8))
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _data(self) -> bytes:
        return json.dumps(asdict(self.info)).encode()

    def _create(self) -> bool:
        """Link a complete temporary file to the lock's name; False when the name exists."""
        temporary = self.path.with_name(f".{self.path.name}.{self.info.token}.tmp")
        atomic_write_bytes(temporary, self._data())
        try:
            os.link(temporary, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)

    def _remove_stale(self, stale: LockInfo) -> None:
        """Move the stale lock aside; if another run replaced it meanwhile, put that one back."""
        aside = self.path.with_name(f".{self.path.name}.{self.info.token}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = read_lock(aside)
        if moved is not None and moved.token != stale.token:
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            if self._create():
                self._start_heartbeat()
                return
            held = read_lock(self.path)
            if held is None:
                continue
            if not is_stale(held, stale_after=self.stale_after):
                raise LockHeld(f"in use by another run ({held.describe()}); wait for it to finish, or delete "
                               f"{self.path} if that run is gone")
            self._remove_stale(held)
        raise LockHeld(f"{self.path}: could not take the lock (other runs are starting at the same time)")

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="napari-attunet-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            self.refresh()

    def refresh(self) -> None:
        """Rewrite the heartbeat, unless another run has taken the lock over."""
        held = read_lock(self.path)
        if held is None or held.token != self.info.token:
            self.lost = True
            self._stop.set()
            return
        self.info.heartbeat = time.time()
        try:
            atomic_write_bytes(self.path, self._data())
        except OSError:  # a full disk must not kill the heartbeat; the next beat retries
            pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        held = read_lock(self.path)
        if held is not None and held.token == self.info.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
