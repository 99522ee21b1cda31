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


class Client:
    def __init__(self, cid: int, model: SplitModel, data: FederatedData, split: ClientData, hp,
                 round: int, stream: str, state: dict[str, torch.Tensor],
                 global_model: Callable[[], SplitModel], spare_model: Callable[[str], SplitModel]):
        self.id, self.model, self.data, self.split, self.hp, self.round = cid, model, data, split, hp, round
        self.state = state  # views into the client store (personal tensors and method state)
        self.generator = torch_generator(hp.seed, stream, round, cid)
        self._global_model, self._spare_model = global_model, spare_model

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
        size = batch_size or self.hp.batch_size
        # a trailing batch of one sample joins the previous batch (BatchNorm cannot train on one)
        starts = list(range(0, len(idx), size))
        if len(starts) > 1 and len(idx) - starts[-1] == 1:
            starts.pop()
        ends = starts[1:] + [len(idx)]
        for _ in range(epochs):
            order = idx[torch.randperm(len(idx), generator=self.generator).to(idx.device)]
            for start, end in zip(starts, ends):
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
        hyperparameters come from the run config. Returns the mean loss (nan/inf propagate)."""
        model = self.model if model is None else model
        params = list(model.parameters() if params is None else params)
        chosen = {id(p) for p in params}
        saved = [(p, p.requires_grad) for p in model.parameters()]
        for p, _ in saved:
            p.requires_grad_(id(p) in chosen)
        opt = torch.optim.SGD(params, lr=self.hp.lr if lr is None else lr,
                              momentum=self.hp.momentum if momentum is None else momentum,
                              weight_decay=self.hp.weight_decay if weight_decay is None else weight_decay)
        model.train()
        total, steps = torch.zeros((), device=self.data.x.device), 0
        if batches is None:
            batches = self.batches(epochs or self.hp.local_epochs, batch_size=batch_size)
        try:
            for x, y in batches:
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(x, y)
                loss.backward()
                opt.step()
                total += loss.detach()
                steps += 1
        finally:
            for p, flag in saved:
                p.requires_grad_(flag)
        return float(total) / max(steps, 1)
