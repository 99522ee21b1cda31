"""The compute of a run, counted where the work is done: in the cohort's gradient primitive (every step
of a local update, of an adapt hook and of fine-tuning goes through `Cohort.gradients`), so a method
cannot do work that is not counted.

Kept apart, as samples and FLOPs (summary.json, summary.csv):
  train_samples, train_flops            the local updates' forward + backward passes
  train_forward_samples, _flops         forward-only passes the local updates need inside their
                                        objectives: a frozen teacher or anchor (the round's global
                                        model, ClientView.global_model: e.g. a distillation teacher)
  personalize_train_samples, _flops     the forward + backward passes of the work done before every
                                        evaluation (a method's adapt hook, the fine-tuning add-on), all
                                        evaluations together
  personalize_once_samples, _flops      the same work of the last evaluation alone: what a deployed
                                        client spends once
compute_flops, the headline, is training plus one personalization: it does not depend on eval_every.
Samples are real samples (padding of a vectorized step is not counted). FLOPs come from
torch.utils.flop_counter, measured once per (objective, trained tensors, batch size) on one client's
plain step, times the counts: the same numbers on every engine. The evaluation's own forward passes
(val and test) are not counted: every method does the same there.
"""
from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fedbench.metrics import COMPUTE_FIELDS as FIELDS


class ForwardOnly:
    """Counts the FLOPs of the forward passes run inside `module` (and its submodules) while active:
    an inner FlopCounterMode entered when the outermost of them starts and left when it ends."""

    def __init__(self, module: nn.Module):
        self.module, self.flops, self._depth, self._mode, self._hooks = module, 0, 0, None, []

    def _enter(self, *_):
        self._depth += 1
        if self._depth == 1:
            self._mode = FlopCounterMode(display=False)
            self._mode.__enter__()

    def _leave(self, *_):
        self._depth -= 1
        if self._depth == 0:
            self._mode.__exit__(None, None, None)
            self.flops += self._mode.get_total_flops()

    def __enter__(self) -> "ForwardOnly":
        for m in self.module.modules():
            self._hooks += [m.register_forward_pre_hook(self._enter), m.register_forward_hook(self._leave)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []


def _key(objective) -> object:
    """What identifies an objective's cost: its code (a closure made anew per call has the same)."""
    func = getattr(objective, "__func__", objective)
    return (type(getattr(objective, "__self__", None)), getattr(func, "__code__", func))


class Compute:
    """One federation's counts (plain ints, FIELDS) and the cost of each step measured so far."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(FIELDS, 0)
        self._cost: dict[tuple, tuple[int, int]] = {}

    def count(self, cohort, objective, names: list[str], step) -> None:
        """Add one step of `objective` over the active clients of `step` (their true batch lengths)."""
        lens = step.lens if step.lens is not None else [int(step.idx.shape[1])] * step.active
        evaluation = cohort.phase == "eval"
        for b, clients in Counter(lens).items():
            total, forward = self.cost(cohort, objective, names, step, b)
            if evaluation:  # before an evaluation: all of it is personalization
                for prefix in ("personalize_train", "personalize_once"):
                    self.counts[f"{prefix}_samples"] += b * clients
                    self.counts[f"{prefix}_flops"] += total * clients
                continue
            self.counts["train_samples"] += b * clients
            self.counts["train_flops"] += (total - forward) * clients
            if forward:
                self.counts["train_forward_samples"] += b * clients
                self.counts["train_forward_flops"] += forward * clients

    def count_forward(self, cohort, fn, step) -> None:
        """Add one forward-only pass of `fn` over the active clients of `step` (Cohort.forward): training's
        forward-only work (train_forward_*), or personalization before an evaluation."""
        lens = step.lens if step.lens is not None else [int(step.idx.shape[1])] * step.active
        fields = ("personalize_train", "personalize_once") if cohort.phase == "eval" else ("train_forward",)
        for b, clients in Counter(lens).items():
            key = (_key(fn), "forward", b)
            if key not in self._cost:
                idx = step.idx[0, :b]
                with FlopCounterMode(display=False) as mode:
                    cohort.call(fn, {}, 0, cohort.data.x[idx], cohort.data.y[idx])
                self._cost[key] = (int(mode.get_total_flops()), 0)
            for prefix in fields:
                self.counts[f"{prefix}_samples"] += b * clients
                self.counts[f"{prefix}_flops"] += self._cost[key][0] * clients

    def cost(self, cohort, objective, names: list[str], step, b: int) -> tuple[int, int]:
        """(all FLOPs, forward-only FLOPs in the global model) of one client's plain step of `objective`
        on `b` samples (row 0's first b: FLOPs do not depend on the values), measured once."""
        key = (_key(objective), tuple(names), b)
        if key not in self._cost:
            idx = step.idx[0, :b]
            x, y = cohort.data.x[idx], cohort.data.y[idx]
            # the measurement changes nothing: no random draw, and row 0's other tensors (BatchNorm
            # statistics a train-mode forward updates) are put back
            kept = {n: t[0].clone() for n, t in cohort.state.items() if n not in names}
            with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                leaves = {n: cohort.state[n][0].detach().requires_grad_() for n in names}
                with FlopCounterMode(display=False) as total, ForwardOnly(cohort.global_model()) as forward:
                    loss = cohort.call(objective, leaves, 0, x, y)
                    loss = loss[0] if isinstance(loss, tuple) else loss  # (value, carry)
                    if loss.requires_grad:
                        torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            with torch.no_grad():
                for n, t in kept.items():
                    cohort.state[n][0].copy_(t)
            self._cost[key] = (int(total.get_total_flops()), int(forward.flops))
        return self._cost[key]

    def begin_evaluation(self) -> None:
        """An evaluation starts: its personalization replaces the last one's in personalize_once_*."""
        self.counts["personalize_once_samples"] = self.counts["personalize_once_flops"] = 0

    def summary(self) -> dict:
        """The counts, and `compute_flops`: training plus one personalization (the last evaluation's)."""
        c = self.counts
        return dict(c) | {"compute_flops": c["train_flops"] + c["train_forward_flops"] + c["personalize_once_flops"]}

    def state_dict(self) -> dict:
        return dict(self.counts)

    def load_state_dict(self, counts: dict) -> None:
        self.counts = {k: int(counts.get(k, 0)) for k in FIELDS}
