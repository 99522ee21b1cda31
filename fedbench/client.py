"""What a method sees of one client in one round: its model, its data, and a seeded SGD loop.

Batches are gathered by index from the federation's device tensors (no DataLoader, no
per-sample `__getitem__`). The data order comes from the stream (seed, round, client), so it does not
depend on which method runs or on what happened in earlier rounds.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch

from fedbench.data.types import ClientData, FederatedData
from fedbench.models import SplitModel
from fedbench.seeding import torch_generator


@torch.no_grad()
def sgd_step(params: list[torch.Tensor], buffers: list, lr: float, momentum: float, weight_decay: float) -> None:
    """One step of torch.optim.SGD (dampening 0, no Nesterov) on the params that have a gradient,
    with the same arithmetic in the same order (its foreach form), without the Optimizer object's
    per-step bookkeeping, which costs more than the update itself on small models."""
    chosen = [i for i, p in enumerate(params) if p.grad is not None]
    ps = [params[i] for i in chosen]
    grads = [p.grad for p in ps]
    if not ps:
        return
    if weight_decay != 0:
        grads = torch._foreach_add(grads, ps, alpha=weight_decay)
    if momentum != 0:
        for i, g in zip(chosen, grads):
            if buffers[i] is None:
                buffers[i] = g.detach().clone()
            else:
                buffers[i].mul_(momentum).add_(g)
        grads = [buffers[i] for i in chosen]
    torch._foreach_add_(ps, grads, alpha=-lr)


def batch_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of each minibatch of an epoch over n samples: fixed-size batches, and a trailing
    batch of one sample joins the previous one (BatchNorm cannot train on one)."""
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


class Client:
    def __init__(self, cid: int, model: SplitModel, data: FederatedData, split: ClientData, hp,
                 round: int, stream: str, state: dict[str, torch.Tensor],
                 global_model: Callable[[], SplitModel], spare_model: Callable[[str], SplitModel]):
        self.id, self.model, self.data, self.split, self.hp, self.round = cid, model, data, split, hp, round
        self.state = state  # views into the client store (personal tensors and method state)
        self._stream, self._generator = stream, None
        self._global_model, self._spare_model = global_model, spare_model

    @property
    def generator(self) -> torch.Generator:
        """The client's data-order generator for this round and stream (made on first use: seeding
        costs more than many clients' evaluation, which needs none)."""
        if self._generator is None:
            self._generator = torch_generator(self.hp.seed, self._stream, self.round, self.id)
        return self._generator

    @generator.setter
    def generator(self, value: torch.Generator) -> None:
        self._generator = value

    @property
    def lr(self) -> float:
        """The learning rate of this round (the run's optimizer and schedule)."""
        return self.hp.lr_at(self.round)

    @property
    def n_train(self) -> int:
        return len(self.split.train)

    def global_model(self) -> SplitModel:
        """The round's global model (the server state this client received), frozen."""
        return self._global_model()

    @torch.no_grad()
    def aux_model(self, prefix: str) -> SplitModel:
        """A second model (one reusable object per prefix) loaded with this client's state tensors
        `prefix + key`, e.g. Ditto's personal model "v.". Write it back with `save_aux`."""
        model = self._spare_model(prefix)
        for key, t in model.state_dict(keep_vars=True).items():
            t.copy_(self.state[prefix + key])
        return model

    @torch.no_grad()
    def save_aux(self, prefix: str, model: SplitModel) -> None:
        for key, t in model.state_dict().items():
            self.state[prefix + key].copy_(t)

    def batches(self, epochs: int = 1, split: str = "train", batch_size: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled minibatches of the client's `split`, `epochs` passes."""
        idx = getattr(self.split, split)
        bounds = batch_bounds(len(idx), batch_size or self.hp.batch_size)
        for _ in range(epochs):
            order = idx[torch.randperm(len(idx), generator=self.generator).to(idx.device)]
            for start, end in bounds:
                b = order[start:end]
                yield self.data.x[b], self.data.y[b]

    def sgd(self, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
            params: Iterable[torch.nn.Parameter] | None = None, epochs: int | None = None,
            lr: float | None = None, model: SplitModel | None = None, batches: Iterable | None = None,
            batch_size: int | None = None, momentum: float | None = None,
            weight_decay: float | None = None) -> float:
        """Minibatch SGD on `loss_fn(x, y)` over `params` (default: all of `model`, default the
        client's model); every other parameter of `model` is frozen with requires_grad=False for the
        loop (so momentum or weight decay cannot move it). A fresh optimizer each call. Unset
        hyperparameters are the run's optimizer (lr: this round's, `self.lr`). Returns the mean loss
        (nan/inf propagate)."""
        model = self.model if model is None else model
        params = list(model.parameters() if params is None else params)
        chosen = {id(p) for p in params}
        saved = [(p, p.requires_grad) for p in model.parameters()]
        for p, _ in saved:
            p.requires_grad_(id(p) in chosen)
        lr = float(self.lr if lr is None else lr)
        momentum = float(self.hp.momentum if momentum is None else momentum)
        weight_decay = float(self.hp.weight_decay if weight_decay is None else weight_decay)
        buffers: list[torch.Tensor | None] = [None] * len(params)  # momentum: a fresh optimizer each call
        model.train()
        total, steps = torch.zeros((), device=self.data.x.device), 0
        if batches is None:
            batches = self.batches(self.hp.local_epochs if epochs is None else epochs, batch_size=batch_size)
        try:
            for x, y in batches:
                for p in params:  # zero_grad(set_to_none=True)
                    p.grad = None
                loss = loss_fn(x, y)
                loss.backward()
                sgd_step(params, buffers, lr, momentum, weight_decay)
                total += loss.detach()
                steps += 1
        finally:
            for p, flag in saved:
                p.requires_grad_(flag)
        return float(total) / max(steps, 1)
