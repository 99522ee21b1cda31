"""Checkpoints: resume a killed or preempted run exactly where its last checkpoint left it.

A checkpoint is `<run dir>/checkpoint.pt`, written every `checkpoint_every` rounds and when a stop
signal arrives, always at a round boundary, atomically (temp file in the same directory, fsync,
rename, fsync of the directory): a kill at any moment leaves either the previous checkpoint or the
new one, never half a file. It is a `torch.save` of a dict holding only tensors and plain Python
values followed by TAG and the sha256 of those bytes; a file whose checksum does not match (a
damaged disk, a copy cut short) is ignored with one warning line and the run starts from round 0.
It is read back with `torch.load(weights_only=True)` (no code runs on load). It holds:
  round       rounds completed; the run continues at this round
  key         the run's full config hash (seed included): a checkpoint of another config is ignored
  federation  Federation.state_dict(): global state, fixed tensors, the client store (personal
              tensors and every per-client state a method keeps), communication counters, sampling
              counts, and the method's own state if it keeps any (method.state_dict())
  rng         the global torch / CUDA / numpy / python RNG states (the harness draws from per-(seed,
              stream, round, client) generators; these cover a method that uses the global ones)
  rows, timing, last_eval, wall_s   the metrics rows so far, their wall times, the last evaluation
              (for clients.csv) and the compute time spent before this checkpoint
The data, partition, sampling schedule and initial model are rebuilt from the config. The file is
deleted when the run ends complete or diverged (it can be large: it holds every client's state); a
failed or interrupted run keeps it, so running the same command again resumes.

Signals. While a run is in progress SIGINT (Ctrl-C), SIGTERM, SIGUSR1 and SIGUSR2 are caught: the
handler only notes the signal; at the end of the current round the run writes a checkpoint and then
passes the signal on to the handler that was installed before (submitit's: USR2 = checkpoint-and-requeue,
which requeues the Slurm job and exits; TERM = ignore, Slurm's SIGKILL follows). Where nobody else
handled it (Python's own KeyboardInterrupt handler counts as nobody), SIGINT and SIGTERM stop the run
with one line, "stopped at round k; run the same command again to resume" (exit code 130 and 143), and
SIGUSR1/SIGUSR2 only force a checkpoint (`kill -USR1 <pid>`). A second copy of the same signal before the
round ends is passed on at once (a second Ctrl-C stops at once, from the last checkpoint).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import signal
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from fedbench.errors import FedbenchError
from fedbench.files import atomic_open

FORMAT = 2
TAG = b"FEDBENCH-SHA256 "  # the file ends with TAG + the hex sha256 of everything before it
SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2")
STOPPING = (signal.SIGINT, signal.SIGTERM)   # the signals that stop a run nobody else handles


class Interrupted(FedbenchError):
    """A stop signal ended the run after it wrote a checkpoint; rerunning resumes it. Exit code 128 +
    the signal: 130 for Ctrl-C, 143 for SIGTERM."""

    exit_code = 128 + signal.SIGTERM

    def __init__(self, message: str, signum: int = signal.SIGTERM):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


# -- RNG state -----------------------------------------------------------------------------------
def capture_rng() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        states = [s.cpu() for s in state["cuda"]]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _tuples(value):
    """random.setstate needs tuples; a checkpoint may hand back lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# -- the file ------------------------------------------------------------------------------------
class _HashingWriter:
    """A file-like that torch.save writes through: the sha256 of every byte, and the OSError (full
    disk) that torch's writer would otherwise turn into a RuntimeError."""

    def __init__(self, f) -> None:
        self.f, self.sha, self.error = f, hashlib.sha256(), None

    def write(self, data) -> int:
        self.sha.update(data)
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.f.flush()


def save(path: Path, payload: dict) -> None:
    """torch.save `payload` to `path` followed by TAG and the sha256 of what precedes it, atomically
    (results.atomic_open: temp file, fsync, rename), then fsync the directory. A failure to write
    (full disk, read-only directory) is one WriteError line; the previous checkpoint stays."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        out = _HashingWriter(f)
        try:
            torch.save(payload, out)
        except Exception:
            if out.error is not None:
                raise out.error from None
            raise
        f.write(TAG + out.sha.hexdigest().encode())
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # some filesystems cannot fsync a directory; the rename is still atomic
        pass


def load(path: Path, key: str, rounds: int, map_location) -> tuple[dict | None, str]:
    """(payload, "") for a usable checkpoint at `path`; (None, why) when there is none or it is
    unusable (no checksum or a wrong one, unreadable, another format, another config, or a round
    outside [1, rounds]). `why` never suggests loading the file another way."""
    n = len(TAG) + 64
    try:
        with open(path, "rb") as f:  # the body and the trailer apart: one copy of the body in memory
            body = f.read(max(os.fstat(f.fileno()).st_size - n, 0))
            trailer = f.read()
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or type(exc).__name__})"
    if len(trailer) != n or trailer[:-64] != TAG:
        return None, "unreadable (no fedbench checksum at its end: cut short, or not written by this fedbench)"
    if hashlib.sha256(body).hexdigest().encode() != trailer[-64:]:
        return None, "its sha256 checksum does not match its content (the file is damaged)"
    try:
        with warnings.catch_warnings():  # torch's notes on odd pickles: the one warning line is the caller's
            warnings.simplefilter("ignore")
            payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as exc:
        return None, f"unreadable although its checksum matches ({type(exc).__name__}; not a plain-tensor checkpoint)"
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return None, f"format {payload.get('format') if isinstance(payload, dict) else '?'} is not {FORMAT}"
    if payload.get("key") != key:
        return None, "it belongs to another config"
    if not isinstance(payload.get("round"), int) or not 1 <= payload["round"] <= rounds:
        return None, f"round {payload.get('round')!r} is outside [1, {rounds}]"
    return payload, ""


def remove(path: Path) -> None:
    """Delete the checkpoint if the disk allows (a read-only directory keeps it; a rerun retries)."""
    with contextlib.suppress(OSError):
        Path(path).unlink(missing_ok=True)


def remove_temp_files(run_dir: Path) -> None:
    """Delete the `.<name>.*.tmp` files that a kill in the middle of an atomic write leaves behind
    (the files they were to replace are intact). Call only while holding the run's lock
    (fedbench.rundir.lock): the temp files of a process writing this directory are never removed."""
    for stale in Path(run_dir).glob(".*.tmp"):
        remove(stale)


# -- signals -------------------------------------------------------------------------------------
class StopSignals:
    """Context manager: note SIGTERM/SIGUSR1/SIGUSR2 during a run and act on them at round ends.

    `pending` is the signal number seen since the last `dispatch` (or None). `dispatch(round)` passes
    it on after the caller saved a checkpoint (see the module docstring). Handlers are installed only
    in the main thread and for signals not set to SIG_IGN, and restored on exit.
    """

    def __init__(self) -> None:
        self.pending: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _note(self, signum, frame) -> None:
        if self.pending == signum:  # asked twice before the round ended: pass it on now
            self._pass_on(signum, frame, None)
            return
        self.pending = signum

    def dispatch(self, round_done: int, where: Path) -> None:
        """Pass the pending signal on, after the checkpoint of `round_done` rounds was written."""
        signum, self.pending = self.pending, None
        if signum is not None:
            self._pass_on(signum, sys._getframe(), (round_done, where))

    def _pass_on(self, signum: int, frame, saved) -> None:
        previous = self._previous.get(signum, signal.SIG_DFL)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        # nobody else acts on it: Python's Ctrl-C handler, or submitit's SIGTERM bypass in a local job
        # (there SIGTERM comes from the local launcher stopping its sweep, not from a Slurm preemption)
        local_bypass = signum == signal.SIGTERM and os.environ.get("SUBMITIT_EXECUTOR") == "local"
        if callable(previous) and previous is not signal.default_int_handler and not local_bypass:
            print(f"fedbench: {name}: checkpoint saved, passing the signal on", file=sys.stderr)
            previous(signum, frame)
        elif signum in STOPPING:
            where = f"after round {saved[0]}; checkpoint in {saved[1]}" if saved else \
                "before the end of its round (from its last checkpoint)"
            raise Interrupted(f"stopped by {name} {where}; run the same command again to resume", signum)
        elif saved:
            print(f"fedbench: {name}: checkpoint written after round {saved[0]}", file=sys.stderr)
