"""MLflow: one MLflow run per fedbench run, written through MlflowClient against a tracking URI
(`logger.mlflow.tracking_uri`; default a local file store in <results_dir>/mlruns, which the
mlflow-skinny client writes with no server and no network).

The run (in experiment `logger.mlflow.experiment`) is named <method>/<setting>/seed<seed> and tagged
with its group, method, dataset, partition, seed, config hash and run directory; the flat config
are its params; each metrics.csv column is a metric of the same name with the round as the step; at
the end the summary's headline numbers are metrics at the last round, the status and how the run
was computed are tags, and the MLflow status is FINISHED (complete), FAILED (diverged, failed) or
KILLED (interrupted).

Resume: the run id is kept in <run dir>/tracking.json. A resumed run reopens that MLflow run, logs
only the params it lacks, and skips every round its metric history already has (a killed run may
have logged rounds after its last checkpoint; the resumed run recomputes them identically). A run
that starts again from round 0 gets a new MLflow run, and the old one, if still RUNNING, is KILLED.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from omegaconf import DictConfig

from fedbench.rundir import lock as runlock
from fedbench.tracking import state
from fedbench.tracking.identity import RunIdentity, facts, headline, last_step, metrics_of

STATUS = {"complete": "FINISHED", "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}
HISTORY_KEY = "test_acc"   # every metrics row has it: its history says which rounds are logged
BATCH = 100                # MLflow's limit of params per log_batch call


def tracking_uri(settings: DictConfig, run: RunIdentity) -> str:
    uri = settings.get("tracking_uri")
    return str(uri) if uri else (run.results_dir / "mlruns").as_uri()


def allow_file_store(uri: str) -> None:
    """MLflow 3 keeps its file store in maintenance mode and refuses it unless
    MLFLOW_ALLOW_FILE_STORE=true; a local path is what the user chose here (or our default)."""
    if urlparse(uri).scheme in ("", "file"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


@contextlib.contextmanager
def store_lock(uri: str):
    """For a local file store, an exclusive flock on <store>.lock, a file beside the store (as a run's
    lock is beside its directory), held while a job opens the store and gets or creates its
    experiment. MLflow's file store writes without locks: opening a store that does not exist yet
    creates it with its default experiment (0/meta.yaml) and its trash folder, and the check of an
    experiment's name and its creation are two steps. Two jobs of a sweep starting together on a fresh
    results_dir made two experiments of one name, or failed with "Yaml file '.../0/meta.yaml'
    exists". Everything after that writes inside the job's own run (its own directory). A server
    store enforces unique names itself: no lock."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        yield
        return
    root = Path(unquote(parsed.path))
    root.parent.mkdir(parents=True, exist_ok=True)
    with runlock.exclusive(root.with_name(root.name + ".lock")):
        yield


class Tracker:
    def __init__(self, settings: DictConfig, run: RunIdentity, resumed_from_round: int) -> None:
        from mlflow.tracking import MlflowClient

        self.run = run
        self.uri = tracking_uri(settings, run)
        allow_file_store(self.uri)
        with store_lock(self.uri):   # opening the store may create it: one job at a time
            self.client = MlflowClient(tracking_uri=self.uri)
        kept = state.get(run.run_dir, "mlflow")
        same_store = kept.get("tracking_uri") == self.uri
        self.logged, self.reopened = 0, False
        self.run_id = self._reopen(kept["run_id"]) if resumed_from_round and same_store else None
        if self.run_id is None:
            if same_store and kept.get("run_id"):
                self._abandon(kept["run_id"])
            with store_lock(self.uri):
                experiment = self._experiment(str(settings.experiment))
            self.run_id = self.client.create_run(experiment, run_name=run.name, tags=run.tags).info.run_id
            state.put(run.run_dir, "mlflow", {"run_id": self.run_id, "tracking_uri": self.uri})
        self.step = max(self.logged, resumed_from_round)

    def _reopen(self, run_id: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_run(run_id)
        except MlflowException:
            return None
        if found.info.lifecycle_stage != "active":
            return None
        self.client.update_run(run_id, status="RUNNING")
        self.logged = max((m.step for m in self.client.get_metric_history(run_id, HISTORY_KEY)), default=0)
        self.reopened = True
        return run_id

    def _abandon(self, run_id: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, "KILLED")
        except MlflowException:
            pass

    def _experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                return self.client.create_experiment(name)
            except MlflowException:   # another job of the sweep created it a moment ago
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise ValueError(f"MLflow experiment {name!r} is deleted in {self.uri}; restore it "
                             "or choose another with logger.mlflow.experiment=<name>")
        return found.experiment_id

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        have = self.client.get_run(self.run_id).data.params if self.reopened else {}
        new = [Param(k, str(v)) for k, v in params.items() if k not in have]
        for i in range(0, len(new), BATCH):
            self.client.log_batch(self.run_id, params=new[i:i + BATCH])

    def _log_metrics(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def log_row(self, step: int, row: dict) -> None:
        if step <= self.logged:
            return   # logged by the segment this run resumes (the same numbers)
        self._log_metrics(metrics_of(row), step)
        self.logged = self.step = step

    def finish(self, summary: dict) -> None:
        self._log_metrics(headline(summary), last_step(summary, self.step))
        for key, value in facts(summary).items():
            self.client.set_tag(self.run_id, key, value[:5000])
        self.client.set_terminated(self.run_id, STATUS.get(summary.get("status"), "FAILED"))
        self.run_id = None

    def close(self) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "KILLED")
            self.run_id = None
