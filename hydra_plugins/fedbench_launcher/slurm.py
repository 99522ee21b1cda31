"""`hydra/launcher=slurm`: hydra-submitit-launcher's Slurm launcher, saying what it does as it does it.
The plain one prints nothing until every job has ended; this one prints the array job's id and where its
logs are as soon as it is submitted, then a line per run as it finishes (its final accuracy and wall
time, or how it ended), so a long sweep can be followed (squeue, the logs) from its first minute."""
from __future__ import annotations

import sys
import time
from typing import Sequence
from unittest import mock

from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class FeedbackSlurmLauncher(SlurmLauncher):
    poll_s = 2.0

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        original = submitit.AutoExecutor.map_array

        def map_array(executor, fn, *iterables):   # submit, say so, then follow the jobs to their end
            jobs = original(executor, fn, *iterables)
            announce(jobs)
            follow(jobs, job_overrides, initial_job_idx, self.poll_s)
            return jobs

        with mock.patch.object(submitit.AutoExecutor, "map_array", map_array):
            return super().launch(job_overrides, initial_job_idx)


def announce(jobs) -> None:
    if not jobs:
        return
    array = str(jobs[0].job_id).split("_")[0]
    print(f"fedbench: submitted Slurm job {array} ({len(jobs)} run{'s' * (len(jobs) != 1)}; squeue -j {array}); "
          f"logs: {jobs[0].paths.stderr} (and _<task> for the others)", file=sys.stderr, flush=True)


def follow(jobs, job_overrides, first: int, poll_s: float) -> None:
    """A line per job as it ends; Ctrl-C stops the following, not the jobs (they run on the cluster)."""
    from hydra_plugins.fedbench_launcher.local_pool import outcome

    pending = dict(enumerate(jobs))
    try:
        while pending:
            for i, job in list(pending.items()):
                if job.done():
                    del pending[i]
                    try:
                        result = outcome(job.results()[0])
                    except Exception as exc:  # noqa: BLE001 -- the job's own failure, said in its line
                        result = outcome(exc)
                    print(f"fedbench: [{len(jobs) - len(pending)}/{len(jobs)}] Slurm job {job.job_id} #{first + i} "
                          f"{' '.join(filter_overrides(job_overrides[i]))}: {result}", file=sys.stderr, flush=True)
            if pending:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"stopped following the sweep; its {len(pending)} unfinished Slurm jobs go on "
                                f"(squeue; scancel {str(jobs[0].job_id).split('_')[0]} to stop them); run the "
                                "same command again to collect them (finished runs are skipped)") from None
