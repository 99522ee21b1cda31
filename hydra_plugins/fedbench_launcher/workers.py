"""Persistent workers for the local pool (`hydra.launcher.reuse_processes=true`): one Python process per
slot runs the sweep's jobs one after another, so a sweep of many short runs pays Python's and torch's
start (~5 s a run on a 2-core CPU: imports, torch._dynamo pulled in by the FLOP counter, the dataset
reader) once per slot instead of once per run.

A worker is `python -m hydra_plugins.fedbench_launcher.workers`, started with its slot (affinity and
GPUs applied before anything imports torch). It connects back to the launcher
(multiprocessing.connection, authenticated), then receives jobs (cloudpickled: the launcher and the
job's arguments) and answers each with its JobReturn, running it exactly as a per-run process does
(the launcher's own __call__: Hydra's run_job on the composed sweep config). Each job's stdout and
stderr go to <sweep>/.workers/<job num>_log.out|err. A worker that dies (crash, out of memory, killed)
fails the job it held, and the pool starts a new one for the slot; a job running past the timeout is
ended the same way.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from multiprocessing.connection import Client, Listener, wait
from pathlib import Path


@contextmanager
def job_logs(folder: Path, job_num: int):
    """fd 1 and 2 (Python's and C's output alike) into the job's log files for the duration."""
    folder.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(folder / f"{job_num}_log.out", "ab") as out, open(folder / f"{job_num}_log.err", "ab") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def picklable_return(ret):
    """A JobReturn the launcher can unpickle: a failed job's exception kept when it pickles, else as
    a RuntimeError with its text."""
    import cloudpickle

    try:
        cloudpickle.dumps(ret)
        return ret
    except Exception:  # noqa: BLE001 -- any unpicklable exception or config object
        ret._return_value = RuntimeError(f"{type(ret._return_value).__name__}: {ret._return_value}")
        return ret


def serve(address: str, authkey: bytes) -> None:
    """The worker's loop: receive (launcher, job args), run, answer; None ends it."""
    import cloudpickle

    with Client(address, authkey=authkey) as conn:
        while (message := conn.recv_bytes()) != b"":
            launcher, args, log_dir = cloudpickle.loads(message)
            with job_logs(Path(log_dir), args[2]):
                ret = launcher.run_here(*args)
            conn.send_bytes(cloudpickle.dumps(picklable_return(ret)))


class Worker:
    """One worker process of a slot, and the job it holds (None: idle)."""

    def __init__(self, listener: Listener, authkey: bytes, slot, log_dir: Path):
        self.slot = slot
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(slot.gpus))
        env.pop("SLURM_CPUS_PER_TASK", None)
        log_dir.mkdir(parents=True, exist_ok=True)
        code = ("import os, sys; cpus = [int(c) for c in sys.argv[3].split(',') if c]; "
                "cpus and hasattr(os, 'sched_setaffinity') and os.sched_setaffinity(0, cpus); "
                "from hydra_plugins.fedbench_launcher.workers import serve; serve(sys.argv[1], bytes.fromhex(sys.argv[2]))")
        self.proc = subprocess.Popen([sys.executable, "-c", code, listener.address, authkey.hex(),
                                      ",".join(map(str, slot.cpus))], env=env, stdin=subprocess.DEVNULL,
                                     stdout=open(log_dir / "worker.out", "ab"), stderr=open(log_dir / "worker.err", "ab"))
        self.conn = listener.accept()
        self.job: int | None = None
        self.started = 0.0

    def exit_code(self) -> int | None:
        """The worker's exit status once it has ended (waits a little: its pipe closes first)."""
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None

    def give(self, job: int, payload: bytes) -> None:
        self.job, self.started = job, time.monotonic()
        self.conn.send_bytes(payload)

    def stop(self, kill: bool = False) -> None:
        try:
            if kill:
                self.proc.kill()
            else:
                self.conn.send_bytes(b"")
        except OSError:
            pass
        self.conn.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_pool(launcher, slots, jobs: list[tuple[int, tuple]], log_dir: Path, timeout_s: float, report) -> dict:
    """Run `jobs` [(index, args of launcher.run_here)] on one persistent worker per slot; returns
    {index: JobReturn}. `report(index, JobReturn)` is called as each finishes."""
    import cloudpickle
    from hydra.core.utils import JobReturn, JobStatus

    from hydra_plugins.fedbench_launcher.local_pool import ctrl_c_to_launcher, stop_gracefully

    authkey = os.urandom(16)
    results, pending = {}, list(jobs)
    with Listener(family="AF_UNIX", authkey=authkey) as listener:
        with ctrl_c_to_launcher():
            workers = [Worker(listener, authkey, slot, log_dir) for slot in slots[:max(1, min(len(slots), len(jobs)))]]
        try:
            while pending or any(w.job is not None for w in workers):
                for w in workers:
                    if w.job is None and pending:
                        i, args = pending.pop(0)
                        w.give(i, cloudpickle.dumps((launcher, args, str(log_dir))))
                busy = [w for w in workers if w.job is not None]
                ready = wait([w.conn for w in busy], timeout=1.0)   # a dead worker's connection reads as EOF
                for k, w in enumerate(workers):
                    if w.job is None:
                        continue
                    why = None
                    if w.conn in ready:
                        try:
                            results[w.job] = cloudpickle.loads(w.conn.recv_bytes())
                        except (EOFError, OSError):
                            why = f"its worker process ended (exit {w.exit_code()})"
                    elif w.proc.poll() is not None:
                        why = f"its worker process ended (exit {w.proc.returncode})"
                    elif time.monotonic() - w.started > timeout_s:
                        why = f"it ran past the timeout ({timeout_s / 60:.0f} min)"
                    else:
                        continue
                    done = w.job
                    if why is not None:
                        ret = JobReturn(overrides=list(dict(jobs)[done][0]), status=JobStatus.FAILED)
                        ret._return_value = RuntimeError(f"the job failed: {why}")
                        results[done] = ret
                        w.stop(kill=True)
                        with ctrl_c_to_launcher():
                            workers[k] = w = Worker(listener, authkey, w.slot, log_dir)
                    w.job = None
                    report(done, results[done])
        except KeyboardInterrupt:
            busy = [w for w in workers if w.job is not None]
            stop_gracefully(lambda w: w.proc.send_signal(signal.SIGTERM), busy,
                            lambda: [w.proc.wait() for w in busy], len(results))
        finally:
            for w in workers:
                w.stop(kill=any(x.job is not None for x in workers))
    return results

