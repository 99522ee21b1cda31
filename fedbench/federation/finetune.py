"""Fine-tuning before evaluation, an add-on any method can switch on (pFL-Bench style).

With `method.ft_epochs > 0` the harness fine-tunes the model a method evaluates (its `evaluates`
model, as its `predict` uses it) on each client's TRAIN split (fresh optimizer, the clients'
`finetune` data stream) right before testing it. It works on the evaluation cohort's throwaway copy:
nothing fine-tuned ever reaches the server or the client store.
  ft_epochs      epochs of fine-tuning (0 = off)
  ft_lr          learning rate (null: the run's lr at its last round, after the schedule: the final
                 training lr, as the published fine-tuning protocols use)
  ft_part        which part is tuned: all | head | backbone (others frozen)
  ft_momentum    SGD momentum (null: the run's momentum)
  ft_batch_size  batch size (null: the run's batch_size)
"""
from __future__ import annotations

import torch.nn.functional as F


def finetune_settings(part) -> dict | None:
    """The add-on's settings from the method config's fine-tuning part ({ft_epochs, ft_lr, ...});
    None when it is off."""
    epochs = int(part["ft_epochs"])
    if epochs <= 0:
        return None
    momentum = part["ft_momentum"]
    return {"epochs": epochs, "lr": part["ft_lr"], "part": part["ft_part"],
            "momentum": None if momentum is None else float(momentum), "batch_size": part["ft_batch_size"]}


def finetune(cohort, method, epochs: int, lr=None, part: str = "all", momentum=None, batch_size=None):
    """Fine-tune the evaluated model of every client of the cohort in place; returns the mean losses."""
    def objective(c, x, y, reduction="mean"):
        return F.cross_entropy(method.predict(c, x), y, reduction=reduction)

    return cohort.sgd(objective, train=part, model=getattr(cohort, method.evaluates), epochs=epochs,
                      lr=cohort.training.final_lr if lr is None else lr, momentum=momentum, weight_decay=0.0,
                      batch_size=batch_size)
