"""One writer per run directory: an OS file lock held for the whole run.

The lock is `fcntl.flock` on `<run dir>.lock`, a file beside the run directory (e.g.
`.../<config hash>/seed0.lock`), taken before the run writes anything and held until it returns. The
kernel releases it when the process ends in any way, kill -9 included, so a lock is never stale.
The file holds the holder's host, pid, start time (and Slurm job id), so that a second process on the
same directory can say who is running it; it refuses in one line (RunInProgress) and touches nothing.
Lock files are never deleted: deleting one would let two processes lock two different files of one
name. It lives beside the directory, not in it, so that a damaged run's files can be moved aside
(fedbench.rundir.completion) without moving the lock.

Shared filesystems: on NFS, Linux implements flock with the server's byte-range locks (NLM for NFSv3,
built into NFSv4), so the lock holds across nodes when the mount has working locking; with `nolock`,
`local_lock=all|flock`, or a filesystem mounted with node-local flock (some Lustre/GPFS setups), it
protects only against processes on the same node. A filesystem that refuses locks (ENOLCK) gets one
warning line and the run goes on unprotected.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from fedbench.errors import FedbenchError


class RunInProgress(FedbenchError):
    """Another process holds the run directory's lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # a filesystem without working file locks


@contextlib.contextmanager
def exclusive(path: Path):
    """An exclusive flock on the file `path` (created) for the block, waiting for it; on a filesystem
    without working locks the block runs unlocked, as a run does (WriterLock)."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in NO_LOCKS:
                raise
        yield  # closing the file releases the lock


def lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + ".lock")


def holder_info() -> dict:
    info = {"host": socket.gethostname(), "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())}
    if os.environ.get("SLURM_JOB_ID"):
        info["slurm_job"] = os.environ["SLURM_JOB_ID"]
    return info


def describe(info: dict) -> str:
    if not info.get("pid"):
        return "a process that is starting (holder not written yet)"
    text = f"pid {info['pid']} on host {info.get('host', '?')} since {info.get('since', '?')}"
    return text + (f", Slurm job {info['slurm_job']}" if info.get("slurm_job") else "")


def _read_info(fd: int) -> dict:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


class WriterLock:
    """Context manager; `acquire()` takes the lock (creating the lock file and its parent
    directories), raising RunInProgress when another process holds it; leaving the context releases it.
    Acquiring again while held is a no-op."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = lock_path(run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                holder = describe(_read_info(fd))
                os.close(fd)
                raise RunInProgress(f"run in progress: {self.run_dir} is being written by {holder}; "
                                    "wait for it to end, or stop it and run the same command again to "
                                    "resume") from None
            if exc.errno in NO_LOCKS:
                print(f"fedbench: warning: cannot lock {self.path} ({exc.strerror}): this filesystem has no "
                      "working file locks, so nothing stops a second process on this run", file=sys.stderr)
            else:
                os.close(fd)
                raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder_info()) + "\n").encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only its holder goes unnamed
            pass
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> "WriterLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
