"""Experiment trackers: a run's config, metrics rows and summary also go to TensorBoard, MLflow
and/or Weights & Biases, chosen with the config group `logger` (conf/logger/): `logger=tensorboard`,
`logger=mlflow`, `logger=wandb`, several at once as `logger=[tensorboard,mlflow]`; `none` is the default.

What every tracker gets (fedbench.tracking.identity): the resolved config as flat parameters, each
metrics.csv row with the round as the step, and at the end the summary's headline numbers and status;
a run name (method, setting, seed) and a group (the setting) so a sweep's runs group by setting.

run.py calls this package on four lines marked [tracking]: `open_trackers` when the run starts or
resumes, `Trackers.log_row` after each metrics.csv row, and `Trackers.finish` after summary.json is
written, for a finished run and for a failed or interrupted one. A tracker that fails there (unwritable directory, full disk, a
server gone) is dropped with one warning line, and the run and its own files go on untouched
(fedbench.tracking.composite). The libraries are an optional extra (pip install -e '.[tracking]');
fedbench.config checks that a chosen one is installed before any work.

Resume: a resumed run continues the same tracker run and never logs a round twice: TensorBoard
purges steps after the checkpoint (SummaryWriter's purge_step), MLflow reopens the run id kept in the
run directory (tracking.json) and skips rounds its metric history already has, W&B resumes the
stored run id and skips rounds that an earlier segment finished logging.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from fedbench.tracking.loggers import EXTRA, LOGGERS, Logger, chosen, is_installed


def open_trackers(cfg: DictConfig, run_dir: Path, resumed_from_round: int = 0):
    """Start (or, for a resumed run, reopen) every chosen tracker and log the run's parameters.
    Never raises: a tracker that cannot start is left out with one warning line."""
    from fedbench.tracking.composite import open_all

    return open_all(cfg, Path(run_dir), int(resumed_from_round or 0))


__all__ = ["EXTRA", "LOGGERS", "Logger", "chosen", "is_installed", "open_trackers"]
