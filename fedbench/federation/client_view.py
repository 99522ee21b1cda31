"""What a method's objective sees: ONE client inside one step (ClientView), and the modules into which
that client's tensors are put for the call (StepModules).

`loss(client, x, y, reduction)` gets a ClientView: its `model` and `personal_model` are modules holding
that client's tensors, so the same objective runs client by client or vmapped over a cohort.
"""
from __future__ import annotations

import torch
from torch import nn

MODELS = ("model", "personal_model")   # the cohort-state prefixes of model tensors


class ClientView:
    """One client inside one step: its model and personal model (modules holding its tensors), its
    extra state tensors and class counts, the run's training settings, the frozen round-start global
    model, and `carry`: state values the objective hands to the next step (a running mean), which
    the cohort's sgd writes into the client's state after the step (names given as sgd's `carry`)."""

    def __init__(self, modules: "StepModules", state: dict, cohort, trained: frozenset = frozenset(),
                 weights: torch.Tensor | None = None):
        self.model, self.personal_model = modules.model, getattr(modules, "personal_model", None)
        self.state, self._trained, self._weights = state, trained, weights
        self.training = cohort.training
        self._global = cohort.global_model()
        self.carry: dict[str, torch.Tensor] = {}

    def batch_mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean over this step's batch of per-sample rows `t` (batch first): a vectorized step pads
        a short batch, so a statistic of the batch must be taken with the step's sample weights."""
        if self._weights is None:
            return t.mean(0)
        return (self._weights.view(-1, *([1] * (t.dim() - 1))) * t).sum(0)

    def batch_sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum over this step's batch of per-sample rows `t` (its real samples: padding left out)."""
        if self._weights is None:
            return t.sum(0)
        return ((self._weights > 0).to(t.dtype).view(-1, *([1] * (t.dim() - 1))) * t).sum(0)

    @property
    def trained(self) -> frozenset:
        """The model's parameters this step trains (requires_grad cannot tell inside vmap)."""
        return frozenset(n.removeprefix("model.") for n in self._trained if n.startswith("model."))

    @property
    def class_counts(self) -> torch.Tensor:
        """The client's train-split label counts (float, one per class)."""
        return self.state["class_counts"]

    def global_model(self) -> nn.Module:
        """The round's global model (the server state the clients received), frozen."""
        return self._global


class StepModules(nn.Module):
    """The modules an objective runs (the model and, when the method keeps one, the personal model),
    into which `run` puts one client's tensors (or, under vmap, the cohort's batched ones) for the
    duration of a call: the same substitution as torch.func.functional_call, without its per-call
    traversal of the modules (which cost more than a small model's forward and backward)."""

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

    def set_mode(self, training: bool) -> "StepModules":
        """train() or eval() only when the mode changes (each walks every module; steps call this
        often). Only this method switches these modules' mode."""
        if self.training != training:
            self.train(training)
        return self

    def run(self, tensors: dict[str, torch.Tensor], fn, cohort, state, x, y, w, trained=frozenset()):
        """`fn(view, x, y, reduction)` (or, with fn None, the method's prediction) with `tensors` in
        the modules: the mean objective, or with weights `w` the weighted sum of per-sample terms;
        with what the objective carries to the next step, (value, carry)."""
        saved = [(self._slots[n], self._slots[n][0][self._slots[n][1]]) for n in tensors]
        try:
            for n, t in tensors.items():
                table, attr = self._slots[n]
                table[attr] = t
            view = ClientView(self, state, cohort, trained, w)
            if fn is None:  # a prediction
                return cohort.predict(view, x)
            value = fn(view, x, y, "mean") if w is None else (fn(view, x, y, "none") * w).sum()
            return (value, view.carry) if view.carry else value
        finally:
            for (table, attr), old in saved:
                table[attr] = old
