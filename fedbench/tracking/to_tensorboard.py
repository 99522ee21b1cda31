"""TensorBoard: torch.utils.tensorboard.SummaryWriter writing event files into <run dir>/tensorboard/.

The config goes to the HParams dashboard (hparams summaries, values as TensorBoard accepts them),
the run's name and group to a text summary, each metrics.csv column to a scalar of the same name at
its round, and the summary's headline numbers to scalars at the last round, with the status as text.
Events are flushed after every row, so a killed run keeps what it logged.

Resume: the writer opens with purge_step = the checkpoint round + 1, which tells TensorBoard's
readers to drop the steps from there on that an earlier segment wrote (the resumed run recomputes
exactly those rows), so no step is there twice.
"""
from __future__ import annotations

import json
import numbers

from omegaconf import DictConfig

from fedbench.tracking.identity import RunIdentity, facts, headline, last_step, metrics_of

SUBDIR = "tensorboard"
HPARAM_METRICS = ("final_acc", "best_acc", "test_acc")   # what the HParams table shows beside the config


def _hparam(value):
    """HParams take bool, int, float or str: anything else (null) as its JSON text."""
    return value if isinstance(value, (bool, numbers.Real, str)) else json.dumps(value, default=str)


class Tracker:
    def __init__(self, settings: DictConfig, run: RunIdentity, resumed_from_round: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run = run
        self.step = resumed_from_round
        self.writer = SummaryWriter(log_dir=str(run.run_dir / SUBDIR), purge_step=resumed_from_round + 1)

    def log_params(self, params: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        exp, ssi, _ = hparams({k: _hparam(v) for k, v in params.items()}, dict.fromkeys(HPARAM_METRICS, 0.0))
        self.writer.file_writer.add_summary(exp)
        self.writer.file_writer.add_summary(ssi)
        self.writer.add_text("run", f"name: {self.run.name}  \ngroup: {self.run.group}")
        self.writer.flush()

    def log_row(self, step: int, row: dict) -> None:
        for key, value in metrics_of(row).items():
            self.writer.add_scalar(key, value, step)
        self.step = step
        self.writer.flush()

    def finish(self, summary: dict) -> None:
        at = last_step(summary, self.step)
        for key, value in headline(summary).items():
            self.writer.add_scalar(key, value, at)
        self.writer.add_text("status", "  \n".join(f"{k}: {v}" for k, v in facts(summary).items()), at)
        self.close()

    def close(self) -> None:
        self.writer.close()
