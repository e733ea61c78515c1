"""One writer per run directory: a lock file that a second run refuses and a dead run's successor
takes over.

The lock is `run_dir/.lock`, created atomically (O_EXCL) with the owner's host, PID and start time.
A lock whose owner is a process on this host that no longer exists (or this process itself) is
stale: it is moved aside
(an atomic rename that only one contender can win) and taken. A lock held by a live process, or
by another host (whose processes cannot be checked from here), is refused with a message saying
who holds it and how to clear it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path


class RunLockedError(RuntimeError):
    """Another live run holds the directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """`with RunLock(run_dir):` holds the directory for the duration of a run."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self._owner, f)
        return True

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # retries cover a contender removing a stale lock at the same moment
            if self._create():
                return self
            try:
                holder = json.loads(self.path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue  # being replaced or half-written right now
            same_host = holder.get("host") == self._owner["host"]
            pid = int(holder.get("pid", -1))
            # Stale: its process is dead, or it is this very process (an earlier run in it that
            # failed before releasing, e.g. a notebook cell or a test).
            if same_host and (pid == self._owner["pid"] or not _alive(pid)):
                stale = self.path.with_name(f".lock.stale.{holder.get('pid')}")
                try:
                    os.rename(self.path, stale)  # only one contender wins this rename
                except FileNotFoundError:
                    pass
                continue
            where = "this host" if same_host else f"host {holder.get('host')}"
            raise RunLockedError(
                f"{self.path.parent} is in use by process {holder.get('pid')} on {where} "
                f"(since {time.ctime(holder.get('started', 0))}). Two runs must not write one "
                f"directory: use another MODEL_DIR, or if that run is really gone, delete "
                f"{self.path}.")
        raise RunLockedError(f"Could not take {self.path}: it keeps changing; is another run "
                             f"starting in the same directory?")

    def release(self) -> None:
        try:
            holder = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return
        if holder.get("pid") == self._owner["pid"] and holder.get("host") == self._owner["host"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
