"""The training settings a cohort reads (the run config's training keys as a plain, fast object), kept
apart from a method's own hyperparameters (`method.hp`, conf/method/<name>.yaml)."""
from __future__ import annotations

from dataclasses import dataclass

from fedbench.optimizer import lr_at, resolve_optimizer


@dataclass(frozen=True)
class TrainingSettings:
    """The run's seed, batching and optimizer (fedbench.optimizer: the same for every method unless a
    method config sets its own)."""

    seed: int
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    local_epochs: int
    rounds: int = 1
    eval_batch_size: int = 1024
    lr_schedule: str = "constant"
    lr_milestones: tuple = (0.5, 0.75)
    lr_gamma: float = 0.1

    @classmethod
    def from_cfg(cls, cfg) -> "TrainingSettings":
        opt = resolve_optimizer(cfg)
        return cls(int(cfg.seed), opt["lr"], opt["momentum"], opt["weight_decay"], int(cfg.batch_size),
                   int(cfg.local_epochs), int(cfg.rounds), lr_schedule=opt["lr_schedule"],
                   lr_milestones=tuple(opt["lr_milestones"]), lr_gamma=opt["lr_gamma"])

    def lr_at(self, t: int) -> float:
        """The learning rate of round t (the run's schedule)."""
        return lr_at(self.lr, self.lr_schedule, self.lr_milestones, self.lr_gamma, self.rounds, t)

    @property
    def final_lr(self) -> float:
        """The learning rate of the last round (what fine-tuning before evaluation uses by default)."""
        return self.lr_at(self.rounds - 1)
