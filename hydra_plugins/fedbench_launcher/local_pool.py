"""Local parallel sweeps (`hydra/launcher=local`) over submitit's local executor.

submitit's own local launcher starts every run of a sweep at once, each seeing every GPU and every
core: 20 runs on 2 cores means 20 processes with 2 torch threads each (20-50x slower, docs/performance.md, Threads).
This launcher keeps a pool of *slots* instead and starts a run only when a slot is free:
- GPUs visible: one slot per `gpus_per_run` GPUs (default 1: one run per GPU), the cores split
  evenly between the slots;
- no GPU (CPU fallback): one slot per `cpus_per_run` cores (default: the cores shared out
  between min(#cores, #runs) slots).
A run that is already complete is not launched at all: the launcher composes its config, finds its
run directory and reads its summary (fedbench.rundir.completion.finished, read-only), as the run itself
would, so resubmitting a large sweep costs seconds for the finished part instead of one process each.
Inside the run, the slot is applied before any work: CUDA_VISIBLE_DEVICES = the slot's GPUs and the
CPU affinity = the slot's cores, so fedbench.execution.resolve_threads (which reads the affinity) gives
each run exactly its share. SLURM_CPUS_PER_TASK is dropped in the run: when the sweep is started
inside a Slurm allocation it describes the whole allocation, not this run's share of it.
"""

import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher
from omegaconf import OmegaConf, open_dict


@dataclass(frozen=True)
class Slot:
    """What one run in flight may use: CPU ids (affinity) and GPU ids (CUDA_VISIBLE_DEVICES)."""
    cpus: tuple[int, ...]
    gpus: tuple[str, ...] = ()

    def describe(self) -> str:
        gpu = f"GPU {','.join(self.gpus)}, " if self.gpus else ""
        return f"{gpu}{len(self.cpus)} core{'s' * (len(self.cpus) != 1)}"


def visible_gpus() -> list[str]:
    """GPU ids this process may hand out: CUDA_VISIBLE_DEVICES when set, else all CUDA devices."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and not g.strip().startswith("-")]
    try:
        import torch
        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def available_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def plan_slots(cpus: Sequence[int], gpus: Sequence[str], num_runs: int, gpus_per_run: int = 1,
               cpus_per_run: int | None = None, max_parallel: int | None = None) -> list[Slot]:
    """Split the machine into disjoint slots; never more slots than runs or cores."""
    cpus, gpus = list(cpus), list(gpus)
    use_gpus = bool(gpus) and gpus_per_run > 0
    if use_gpus:
        n = len(gpus) // gpus_per_run
    else:
        n = len(cpus) // cpus_per_run if cpus_per_run else len(cpus)
    n = max(1, min(n, num_runs, len(cpus), max_parallel or n))
    share = len(cpus) // n
    if cpus_per_run:
        share = max(1, min(share, cpus_per_run))
    return [Slot(tuple(cpus[i * share:(i + 1) * share]),
                 tuple(gpus[i * gpus_per_run:(i + 1) * gpus_per_run]) if use_gpus else ())
            for i in range(n)]


@contextmanager
def ctrl_c_to_launcher():
    """Children started inside ignore SIGINT (the disposition is inherited): Ctrl-C at the terminal
    reaches every process of the group, and only the launcher should act on it, by asking each run in
    flight to stop at the end of its round (stop_gracefully)."""
    if sys.platform == "win32" or not hasattr(signal, "SIGINT"):
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:   # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_gracefully(stop, running: list, wait_done, finished: int) -> None:
    """After Ctrl-C: `stop(r)` each run in flight (SIGTERM: it checkpoints at its round's end and exits),
    wait for them (`wait_done()`; a second Ctrl-C kills them instead), then raise SweepStopped."""
    from fedbench.errors import SweepStopped

    print(f"fedbench: Ctrl-C: {len(running)} run{'s' * (len(running) != 1)} in flight finish their round and save "
          "a checkpoint (Ctrl-C again to kill them)", file=sys.stderr, flush=True)
    for r in running:
        stop(r)
    try:
        wait_done()
    except KeyboardInterrupt:
        pass
    raise SweepStopped(f"sweep stopped by Ctrl-C: {finished} run{'s' * (finished != 1)} finished, {len(running)} "
                       "stopped with a checkpoint; run the same command again to resume (finished runs are skipped)")


def outcome(ret) -> str:
    """What a finished job came to, for its progress line: its final accuracy and wall time, or how it
    ended."""
    value = getattr(ret, "_return_value", ret)
    if isinstance(value, dict) and value.get("status") == "complete" and "final_acc" in value:
        return f"final acc {100 * value['final_acc']:.2f}%, {value.get('wall_time_s', 0.0):.1f} s"
    if isinstance(value, dict):
        return str(value.get("status"))
    return f"failed ({' '.join(str(value).split())[:160]})"


def apply_slot(slot: Slot) -> None:
    """In the run's process, before anything touches CUDA or sets threads: confine it to the slot."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpus)
    os.environ.pop("SLURM_CPUS_PER_TASK", None)
    if slot.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, slot.cpus)


class LocalPoolLauncher(LocalLauncher):
    """hydra-submitit-launcher's local launcher, with a slot pool instead of all-at-once."""

    def __init__(self, gpus_per_run: int = 1, cpus_per_run: int | None = None,
                 max_parallel: int | None = None, poll_s: float = 0.5, reuse_processes: bool = False,
                 **params: Any) -> None:
        super().__init__(**params)
        self.gpus_per_run, self.cpus_per_run = int(gpus_per_run), cpus_per_run
        self.max_parallel, self.poll_s = max_parallel, float(poll_s)
        self.reuse_processes = bool(reuse_processes)

    def run_here(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state) -> JobReturn:
        """One job in this process, as __call__ runs it in a submitit process (persistent workers)."""
        from hydra.core.utils import run_job, setup_globals

        Singleton.set_state(singleton_state)
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(sweep_overrides))
        with open_dict(sweep_config.hydra.job) as job:
            job.id = job_id
            sweep_config.hydra.job.num = job_num
        return run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=sweep_config,
                       job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state,
                 slot: Slot | None = None) -> JobReturn:
        if slot is not None:
            apply_slot(slot)
        return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)

    def already_complete(self, overrides: Sequence[str]) -> JobReturn | None:
        """The JobReturn of the run `overrides` configure when that run is complete on disk (its summary as
        the return value, as the run itself returns it), else None: anything unclear launches the run,
        which decides (and reports any problem) itself."""
        from fedbench.config import prepare
        from fedbench.rundir import RunDir, completion, path_for

        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):   # the task's config, as the run receives it (Hydra's node removed)
                del cfg["hydra"]
            cfg = prepare(cfg, machine=False)
            summary = completion.finished(RunDir(path_for(cfg)), False, str(cfg.get("code_change", "rerun")),
                                          bool(cfg.get("rerun", False)))
        except Exception:  # noqa: BLE001 -- the run itself reports what is wrong
            return None
        if summary is None:
            return None
        return JobReturn(overrides=list(overrides), cfg=cfg, hydra_cfg=None, working_dir=None,
                         task_name=self.task_function.__name__ if self.task_function else "",
                         status=JobStatus.COMPLETED, _return_value=summary)

    def _executor(self):
        import submitit

        executor = submitit.AutoExecutor(cluster="local", folder=self.params["submitit_folder"])
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"local_{k}": v for k, v in self.params.items()
                                      if k != "submitit_folder"})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        done = {i: ret for i, overrides in enumerate(job_overrides) if (ret := self.already_complete(overrides))}
        pending = [(i, o) for i, o in enumerate(job_overrides) if i not in done]
        # slots planned for the whole sweep, skipped runs included: a run gets the same share of the
        # machine (its thread count) whether or not others of its sweep were already complete
        slots = plan_slots(available_cpus(), visible_gpus(), len(job_overrides), self.gpus_per_run,
                           self.cpus_per_run, self.max_parallel)
        executor = self._executor()
        sweep_dir = str(self.config.hydra.sweep.dir)
        os.makedirs(sweep_dir, exist_ok=True)
        skipped = f" ({len(done)} more already complete: not launched)" if done else ""
        print(f"fedbench: local sweep of {len(pending)} runs{skipped}, {len(slots)} at a time "
              f"({slots[0].describe()} each); logs under {sweep_dir}/.submitit", file=sys.stderr)
        total = len(pending)
        if self.reuse_processes:
            return self.launch_on_workers(job_overrides, initial_job_idx, done, pending, slots, sweep_dir)
        free, running, jobs = list(range(len(slots))), {}, [None] * len(job_overrides)
        try:
            while pending or running:
                while pending and free:
                    i, overrides = pending.pop(0)
                    s = free.pop(0)
                    with ctrl_c_to_launcher():
                        jobs[i] = executor.submit(self, list(overrides), "hydra.sweep.dir", initial_job_idx + i,
                                                  f"job_id_for_{initial_job_idx + i}", Singleton.get_state(), slots[s])
                    running[i] = s
                finished = [i for i in running if jobs[i].done()]
                for i in finished:
                    free.append(running.pop(i))
                    try:
                        result = outcome(jobs[i].results()[0])
                    except Exception as exc:  # noqa: BLE001 -- the job's own failure, said in its line
                        result = outcome(exc)
                    print(f"fedbench: [{total - len(pending) - len(running)}/{total}] "
                          f"#{initial_job_idx + i} {' '.join(filter_overrides(job_overrides[i]))}: {result}",
                          file=sys.stderr)
                if not finished:
                    time.sleep(self.poll_s)
        except KeyboardInterrupt:
            flight = [jobs[i] for i in running]
            stop_gracefully(lambda job: job._process.send_signal(signal.SIGTERM), flight,
                            lambda: [job.wait() for job in flight], total - len(pending) - len(running))
        except BaseException:
            for i in running:
                jobs[i].cancel(check=False)
            raise
        return [done[i] if i in done else job.results()[0] for i, job in enumerate(jobs)]

    def launch_on_workers(self, job_overrides, initial_job_idx, done, pending, slots, sweep_dir):
        """launch with one persistent worker process per slot (workers.run_pool)."""
        from pathlib import Path

        from hydra_plugins.fedbench_launcher.workers import run_pool

        state = Singleton.get_state()
        jobs = [(i, (list(o), "hydra.sweep.dir", initial_job_idx + i, f"worker_{initial_job_idx + i}", state))
                for i, o in pending]
        finished = []

        def report(i, ret):
            finished.append(i)
            print(f"fedbench: [{len(finished)}/{len(jobs)}] #{initial_job_idx + i} "
                  f"{' '.join(filter_overrides(job_overrides[i]))}: {outcome(ret)}", file=sys.stderr)

        results = run_pool(self, slots, jobs, Path(sweep_dir) / ".workers", 60.0 * self.params["timeout_min"], report)
        return [done[i] if i in done else results[i] for i in range(len(job_overrides))]
