"""A cohort: clients stepped together, one (engine=sequential) or many (vmap), written as if it were one
client. It is what a method's `local_update(cohort)` and `adapt(cohort)` get.

A cohort holds working copies of its clients' tensors (`model`, `personal_model`, `state`; a leading
client dimension) and the training primitives `sgd`, `grad`, `batches` and `minibatches`, which step
every client of the cohort at once. An objective (a method's `loss(client, x, y, reduction)`) gets a
ClientView of ONE client (fedbench.federation.client_view). How the gradients of a step are computed
(client by client, or vmapped) is the engine's business: the cohort hands it its stacked tensors and a
way to call the objective on some of its rows. Nothing here knows a method.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import vmap

from fedbench.federation.batches import Plan, Step
from fedbench.federation.client_view import MODELS, StepModules
from fedbench.federation.cohort_data import CohortData
from fedbench.federation.compute import Compute
from fedbench.federation.model_handle import ModelHandle
from fedbench.federation.sgd import sgd_update
from fedbench.federation.training import TrainingSettings


@dataclass(frozen=True)
class CohortSetup:
    """What every cohort of a federation is built with: the training settings, the data, the modules
    its objectives run in, the engine that steps it, the frozen round-start global model (reloaded in
    place each round), the method's prediction (view, x) -> logits, and the compute ledger every
    gradient step is counted in."""

    training: TrainingSettings
    data: object
    modules: StepModules
    engine: object
    global_model: nn.Module
    predict: Callable
    compute: Compute


class Cohort(CohortData):
    """Clients `ids` (rows of every tensor, in decreasing order of train-split size) in round `round`,
    holding working copies of their tensors (`state`, as the federation loads them for `phase`: train
    or eval); `stream` names the data-order stream (data, finetune); `vmapped`: the engine may step its
    rows in one vectorized call."""

    def __init__(self, setup: CohortSetup, ids: np.ndarray, round: int, state: dict[str, torch.Tensor],
                 stream: str, vmapped: bool, phase: str = "train"):
        self.setup, self.ids, self.round, self.state, self.stream = setup, ids, round, state, stream
        self.phase = phase
        self.training, self.data, self.vmapped = setup.training, setup.data, vmapped
        self.model = ModelHandle(state, "model.", setup.modules.model)
        personal = getattr(setup.modules, "personal_model", None)
        self.personal_model = ModelHandle(state, "personal_model.", personal) if personal is not None else None
        self.predict = setup.predict
        self._generators: dict[int, torch.Generator] = {}
        self._row_views: dict[int, tuple[dict, dict]] = {}  # one row's views of the state (call)
        self.carried: dict[str, torch.Tensor] = {}  # what the last step's objective carries to the next

    # -- facts ------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def lr(self) -> float:
        """The learning rate of this round (the run's optimizer and schedule)."""
        return self.training.lr_at(self.round)

    def global_model(self) -> nn.Module:
        """The round's global model (the server state the clients received), frozen."""
        return self.setup.global_model

    # -- training ---------------------------------------------------------------------------------
    def sgd(self, objective: Callable, train="all", model: ModelHandle | None = None, epochs: int | None = None,
            batches: Plan | None = None, lr: float | None = None, momentum: float | None = None,
            weight_decay: float | None = None, batch_size: int | None = None,
            state_steps: dict[str, tuple[float, float, float]] | None = None) -> np.ndarray:
        """Minibatch SGD on `objective(client, x, y, reduction)` over the parameters of `model`'s part
        `train` (a part name or a list of parts; or a list of cohort-state names, such as
        `cohort.model.names() + cohort.personal_model.names()` to train both models), every other
        tensor frozen (so momentum or weight decay cannot move it); a fresh optimizer per call, the
        arithmetic of torch.optim.SGD. Unset hyperparameters are the run's optimizer (lr: this
        round's). `state_steps` {name: (lr, low, high)}: per-client state tensors that also take
        plain projected gradient steps on the objective (e.g. a mixing weight). What the objective
        puts in `client.carry` (a running mean) is written into the client's state after each step.
        Returns each client's mean loss."""
        model = model or self.model
        names = train if isinstance(train, list) and train and train[0].startswith(MODELS) else model.names(train)
        if batches is None:
            batches = self.batches(self.training.local_epochs if epochs is None else epochs, batch_size=batch_size)
        lr = float(self.lr if lr is None else lr)
        momentum = float(self.training.momentum if momentum is None else momentum)
        weight_decay = float(self.training.weight_decay if weight_decay is None else weight_decay)
        extra = list(state_steps or {})
        bufs: dict[str, torch.Tensor | None] = {n: None for n in names}
        totals = torch.zeros(self.size, device=self.data.x.device)
        for step in batches:
            G = step.active
            grads, loss = self.gradients(objective, names + extra, step)
            with torch.no_grad():
                sgd_update({n: self.state[n][:G] for n in names}, grads, bufs, G, lr, momentum, weight_decay)
                for n in extra:
                    if grads.get(n) is not None:
                        step_lr, low, high = state_steps[n]
                        self.state[n][:G].sub_(step_lr * grads[n]).clamp_(low, high)
                for n, value in self.carried.items():  # what the objective hands to the next step
                    self.state[n][:G].copy_(value)
                totals[:G] += loss.detach()
        return totals.cpu().numpy().astype(np.float64) / np.maximum(batches.counts, 1)

    def grad(self, objective: Callable, at: dict[str, torch.Tensor], step: Step,
             model: ModelHandle | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(d objective / d params, loss) of each active client of `step` at the point `at` ({key:
        tensor with the cohort dimension, or just the step's active rows} of `model`'s parameters) on
        its batch; the cohort's own tensors are left as they are."""
        model = model or self.model
        names = [model.prefix + k for k in at]
        saved = {n: self.state[n] for n in names}

        def whole(n: str, t: torch.Tensor) -> torch.Tensor:   # the active rows at `at`, the others as they are
            t = t.detach()
            return t if t.shape[0] == saved[n].shape[0] else torch.cat([t, saved[n][t.shape[0]:]])

        self.state.update({model.prefix + k: whole(model.prefix + k, t) for k, t in at.items()})
        self._row_views.clear()
        try:
            grads, loss = self.gradients(objective, names, step)
        finally:
            self.state.update(saved)
            self._row_views.clear()
        return {k: grads[model.prefix + k] for k in at}, loss

    def gradients(self, objective: Callable, names: list[str], step: Step
                  ) -> tuple[dict[str, torch.Tensor | None], torch.Tensor]:
        """Each active client's gradient of `objective` on its batch of `step` w.r.t. the cohort-state
        tensors `names` (None where the objective does not use one), and its loss: the engine's
        (client by client, or one vmapped call). Counted in the compute ledger: every step of every
        method goes through here."""
        self.setup.modules.set_mode(True)
        grads, loss, self.carried = self.setup.engine.gradients(self, objective, names, step)
        self.setup.compute.count(self, objective, names, step)
        return grads, loss

    @torch.no_grad()
    def forward(self, fn: Callable, step: Step) -> list:
        """`fn(client, x, y, reduction)` on each active client's batch of `step`, without gradients, the
        modules in eval mode (forward-only work, such as class means of features; counted): its
        outputs, one per active client, in row order."""
        self.setup.modules.set_mode(False)
        outs = [self.call(fn, {}, i, self.data.x[step.rows(i)], self.data.y[step.rows(i)]) for i in range(step.active)]
        self.setup.compute.count_forward(self, fn, step)
        return outs

    def predictions(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of every client's evaluated model, (size, L, classes) from inputs (size, L, ...):
        the engine's (client by client, or one vmapped call), the modules in eval mode."""
        self.setup.modules.set_mode(False)
        with torch.no_grad():
            return self.setup.engine.predict(self, x, self.training.eval_batch_size)

    # -- inside a step ----------------------------------------------------------------------------
    def call(self, fn, trained: dict[str, torch.Tensor], rows: slice | int, x, y, w=None):
        """`fn` on client row(s) `rows` with the cohort state, `trained` tensors substituted: the
        models' tensors are put into the modules (StepModules.run), the rest is the view's state. A
        slice of rows is vmapped (one call for the clients), an int row is one plain call."""
        modules = self.setup.modules
        names = frozenset(trained)
        if isinstance(rows, int):  # the row's views, made once per cohort and row
            if rows not in self._row_views:
                row = {n: t[rows] for n, t in self.state.items()}
                self._row_views[rows] = ({n: v for n, v in row.items() if n.startswith(MODELS)},
                                         {n: v for n, v in row.items() if not n.startswith(MODELS)})
            tensors, rest = self._row_views[rows]
            if trained:
                tensors = tensors | {n: v for n, v in trained.items() if n.startswith(MODELS)}
                rest = rest | {n: v for n, v in trained.items() if not n.startswith(MODELS)}
            return modules.run(tensors, fn, self, rest, x, y, w, names)
        state = {n: trained.get(n, t[rows]) for n, t in self.state.items()}
        tensors = {n: v for n, v in state.items() if n.startswith(MODELS)}
        rest = {n: v for n, v in state.items() if not n.startswith(MODELS)}
        one = lambda p, s, xx, yy, ww: modules.run(p, fn, self, s, xx, yy, ww, names)  # noqa: E731
        return vmap(one, in_dims=(0, 0, 0, 0 if y is not None else None, 0 if w is not None else None))(
            tensors, rest, x, y, w)
