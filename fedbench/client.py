"""What a method sees of its clients: a cohort of one client (engine=sequential) or of many (vmap),
written as if it were one client.

`local_update(client)` and `adapt(client)` get a `Client`: the cohort's working copy of each client's
tensors (`client.model`, `client.personal_model`, `client.state`; a leading client dimension) and the
training primitives `sgd`, `grad`, `batches` and `minibatches`, which step every client of the cohort
at once. An objective (a method's `loss(client, x, y, reduction)`) gets a `View`: ONE client as one
step sees it, its models holding that client's tensors (torch.func.functional_call), so the same
objective runs client by client or vmapped over the cohort. Nothing here knows a method.
"""
from __future__ import annotations

import copy
import weakref
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from fedbench.batches import Plan, Step, epochs_of, make_plan, steps_of
from fedbench.seeding import torch_generator
from fedbench.sgd import sgd_update

MODELS = ("model", "personal_model")
_NAMES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()  # ModelHandle.names, per module


class View:
    """One client inside one step: its model and personal model (modules holding its tensors), its
    extra state tensors and class counts, and the frozen round-start global model."""

    def __init__(self, models: nn.Module, state: dict, cohort: "Client", trained: frozenset = frozenset()):
        self.model, self.personal_model = models.model, getattr(models, "personal_model", None)
        self.state, self._cohort, self._trained = state, cohort, trained
        self.run = cohort.run

    @property
    def trained(self) -> frozenset:
        """The model's parameters this step trains (requires_grad cannot tell inside vmap)."""
        return frozenset(n.removeprefix("model.") for n in self._trained if n.startswith("model."))

    @property
    def class_counts(self) -> torch.Tensor:
        """The client's train-split label counts (float, one per class)."""
        return self.state["class_counts"]

    def global_model(self) -> nn.Module:
        return self._cohort.global_model()


class _Models(nn.Module):
    """The modules an objective runs, into which `run` puts one client's tensors (or, under vmap, the
    cohort's batched ones) for the duration of a call: the same substitution as
    torch.func.functional_call, without its per-call traversal of the modules (which cost more than a
    small model's forward and backward)."""

    def __init__(self, model: nn.Module, personal: nn.Module | None):
        super().__init__()
        self.model = model
        if personal is not None:
            self.personal_model = personal
        self._slots = {}
        for name, module in self.named_modules():
            for kind in ("_parameters", "_buffers"):
                for attr in getattr(module, kind):
                    self._slots[f"{name}.{attr}" if name else attr] = (getattr(module, kind), attr)

    def set_mode(self, training: bool) -> "_Models":
        """train() or eval() only when the mode changes (each walks every module; steps call this
        often). Only this method switches these modules' mode (evaluation.segment_sums restores it)."""
        if self.training != training:
            self.train(training)
        return self

    def run(self, tensors: dict[str, torch.Tensor], fn, cohort, state, x, y, w, trained=frozenset()):
        saved = [(self._slots[n], self._slots[n][0][self._slots[n][1]]) for n in tensors]
        try:
            for n, t in tensors.items():
                table, attr = self._slots[n]
                table[attr] = t
            view = View(self, state, cohort, trained)
            if fn is None:  # a prediction
                return cohort.predict(view, x)
            if w is None:
                return fn(view, x, y, "mean")
            return (fn(view, x, y, "none") * w).sum()
        finally:
            for (table, attr), old in saved:
                table[attr] = old


class ModelHandle:
    """One of the cohort's models: `tensors()` are its state tensors for every client of the cohort
    (views of the cohort state, a leading client dimension); `names(part)` their cohort-state names."""

    def __init__(self, state: dict[str, torch.Tensor], prefix: str, module: nn.Module):
        self.state, self.prefix, self.module = state, prefix, module  # the cohort's state (no cycle to it)

    def names(self, part="all", params_only: bool = True) -> list[str]:
        key = (self.prefix, part if isinstance(part, str) else tuple(part), params_only)
        if key not in _NAMES.setdefault(self.module, {}):  # the module's structure never changes
            keys = self.module.keys(part)
            if params_only:
                params = dict(self.module.named_parameters())
                keys = [k for k in keys if k in params]
            _NAMES[self.module][key] = [self.prefix + k for k in keys]
        return _NAMES[self.module][key]

    def tensors(self, params_only: bool = False) -> dict[str, torch.Tensor]:
        return {n.removeprefix(self.prefix): self.state[n] for n in self.names("all", params_only)}

    def state_dict(self, row: int = 0) -> dict[str, torch.Tensor]:
        """One client's tensors of this model (views), keyed as the module's state dict."""
        return {k: t[row] for k, t in self.tensors().items()}

    def copy(self, row: int = 0) -> nn.Module:
        """A standalone module holding client `row`'s tensors (to look at; training never needs it)."""
        module = copy.deepcopy(self.module)
        module.load_state_dict(self.state_dict(row))
        return module

    def __call__(self, x: torch.Tensor, row: int = 0) -> torch.Tensor:
        """The forward of client `row`'s model on x (outside a step: a model to look at)."""
        return functional_call(self.module, self.state_dict(row), (x,))

    @torch.no_grad()
    def assign(self, other: "ModelHandle") -> None:
        """Copy `other`'s tensors (same architecture) into this model, for every client."""
        for k, t in self.tensors().items():
            t.copy_(other.tensors()[k])


class Client:
    """A cohort of clients `ids` (rows of every tensor, in decreasing order of train-split size) in
    round `round`, holding working copies of their tensors (`state`, as Federation.cohort loads them
    for training or evaluation); `stream` names the data-order stream (data, finetune)."""

    def __init__(self, fed, ids: np.ndarray, round: int, state: dict[str, torch.Tensor], stream: str,
                 vmapped: bool):
        self.fed, self.ids, self.round, self.state, self.stream = fed, ids, round, state, stream
        self.run, self.data, self.vmapped = fed.run, fed.data, vmapped
        self.model = ModelHandle(state, "model.", fed.model)
        self.personal_model = ModelHandle(state, "personal_model.", fed.personal_module) \
            if fed.personal_module is not None else None
        self.predict = fed.method.predict
        self._generators: dict[int, torch.Generator] = {}
        self._row_views: dict[int, tuple[dict, dict]] = {}  # one row's views of the state (Client.call)

    # -- facts ------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def id(self) -> int:
        """The client id of a cohort of one."""
        if self.size != 1:
            raise ValueError(f"a cohort of {self.size} clients has no single id")
        return int(self.ids[0])

    @property
    def lr(self) -> float:
        """The learning rate of this round (the run's optimizer and schedule)."""
        return self.run.lr_at(self.round)

    def global_model(self) -> nn.Module:
        """The round's global model (the server state the clients received), frozen."""
        return self.fed.global_model()

    # -- data -------------------------------------------------------------------------------------
    def _generator(self, k: int) -> torch.Generator:
        if k not in self._generators:  # made on first use, then drawn from for the whole round
            self._generators[k] = torch_generator(self.run.seed, self.stream, self.round, int(k))
        return self._generators[k]

    def batches(self, epochs: int | None = None, split: str = "train", batch_size: int | None = None) -> Plan:
        """`epochs` shuffled passes (default: the run's local_epochs) over each client's `split`."""
        epochs = self.run.local_epochs if epochs is None else epochs
        size = batch_size or self.run.batch_size
        return make_plan([epochs_of(getattr(self.data.clients[k], split), self._generator(k), epochs, size)
                          for k in self.ids], self.data.x.dtype)

    def minibatches(self, n: int, batch_size: int | None = None) -> Plan:
        """`n` single train minibatches per client, in its data stream's order (a fixed number of
        steps: every client of the cohort takes all n)."""
        size = batch_size or self.run.batch_size
        return make_plan([steps_of(self.data.clients[k].train, self._generator(k), n, size) for k in self.ids],
                         self.data.x.dtype)

    # -- training ---------------------------------------------------------------------------------
    def sgd(self, objective: Callable, train="all", model: ModelHandle | None = None, epochs: int | None = None,
            batches: Plan | None = None, lr: float | None = None, momentum: float | None = None,
            weight_decay: float | None = None, batch_size: int | None = None,
            state_steps: dict[str, tuple[float, float, float]] | None = None) -> np.ndarray:
        """Minibatch SGD on `objective(client, x, y, reduction)` over the parameters of `model`'s part
        `train` (a part name or a list of parts; or a list of cohort-state names, such as
        `client.model.names() + client.personal_model.names()` to train both models), every other
        tensor frozen (so momentum or weight decay cannot move it); a fresh optimizer per call, the
        arithmetic of torch.optim.SGD. Unset hyperparameters are the run's optimizer (lr: this
        round's). `state_steps` {name: (lr, low, high)}: per-client state tensors that also take
        plain projected gradient steps on the objective (e.g. a mixing weight). Returns each client's mean loss."""
        model = model or self.model
        names = train if isinstance(train, list) and train and train[0].startswith(MODELS) else model.names(train)
        if batches is None:
            batches = self.batches(self.run.local_epochs if epochs is None else epochs, batch_size=batch_size)
        lr = float(self.lr if lr is None else lr)
        momentum = float(self.run.momentum if momentum is None else momentum)
        weight_decay = float(self.run.weight_decay if weight_decay is None else weight_decay)
        extra = list(state_steps or {})
        bufs: dict[str, torch.Tensor | None] = {n: None for n in names}
        self.fed.step_models.set_mode(True)
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
                totals[:G] += loss.detach()
        return totals.cpu().numpy().astype(np.float64) / np.maximum(batches.counts, 1)

    def grad(self, objective: Callable, at: dict[str, torch.Tensor], step: Step,
             model: ModelHandle | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(d objective / d params, loss) of each client at the point `at` ({key: tensor with the
        cohort dimension} of `model`'s parameters) on one step's batches; the cohort's own tensors
        are left as they are."""
        model = model or self.model
        names = [model.prefix + k for k in at]
        self.fed.step_models.set_mode(True)
        saved = {n: self.state[n] for n in names}
        self.state.update({model.prefix + k: t.detach() for k, t in at.items()})
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
        tensors `names` (None where the objective does not use one), and its loss: one vmapped call
        over the active clients, or client by client."""
        return self.fed.engine.gradients(self, objective, names, step)

    # -- inside a step ----------------------------------------------------------------------------
    def call(self, fn, trained: dict[str, torch.Tensor], rows: slice | int, x, y, w=None):
        """`fn` on client row(s) `rows` with the cohort state, `trained` tensors substituted: the
        models' tensors are put into the modules (_Models.run), the rest is the View's state. A slice of rows
        is vmapped (one call for the clients), an int row is one plain call."""
        models = self.fed.step_models
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
            return models.run(tensors, fn, self, rest, x, y, w, names)
        state = {n: trained.get(n, t[rows]) for n, t in self.state.items()}
        tensors = {n: v for n, v in state.items() if n.startswith(MODELS)}
        rest = {n: v for n, v in state.items() if not n.startswith(MODELS)}
        one = lambda p, s, xx, yy, ww: models.run(p, fn, self, s, xx, yy, ww, names)  # noqa: E731
        return vmap(one, in_dims=(0, 0, 0, 0 if y is not None else None, 0 if w is not None else None))(
            tensors, rest, x, y, w)
