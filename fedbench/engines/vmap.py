"""engine=vmap: a round's local updates as one vectorized computation over the sampled clients.

For methods whose local update is plain minibatch SGD on their `loss` (FedAvg, FedPer, FedBSD,
Local, LG-FedAvg, FedAvg-FT): the sampled clients' starting parameters (global, then personal from
the client store, as `Federation.load` does) are stacked along a new first dimension, and each SGD
step of every client is one vmapped forward of the loss over that stack and one backward of the
clients' summed losses (each client's parameters get exactly its own gradient). The method's own
`loss` runs inside, on the live model with the client's parameters substituted
(`torch.func.functional_call`), so FedBSD's distillation term is FedBSD's code, not a copy.

Same results as engine=sequential, up to floating point: every client sees exactly the batches the
sequential engine gives it (the same data-order stream and batching rule, see Client.batches), with
the same SGD arithmetic (torch.optim.SGD's, incl. momentum and weight decay, a fresh optimizer per
client and round). Clients with different numbers of samples take different numbers of steps and
have differently sized last batches: the round's stack is ordered by decreasing step count, so the
clients still training at a step are a prefix of it (views, no copies), and each step is one call
over that prefix. A batch shorter than the step's longest is padded with copies of its first sample
and the method's per-sample loss terms (loss(..., reduction="none")) are weighted 1/len on the batch
and 0 on the padding: exactly the batch mean's value and gradient. The differences from the
sequential engine are summation order only (batched matrix products, the weighted mean as one
tensor product).

Faster on a CPU too for small models, not for convolutional ones (fedbench.engines.auto_engine).
Evaluation is vectorized too when every client evaluates its own loaded model (the default
eval_model, no fine-tuning): chunks of clients' models as one vmapped forward each; otherwise (and
fine-tuning before it) it is the sequential engine's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from fedbench.engines.vmap_eval import evaluate_vmapped
from fedbench.engines.vmap_params import stacked_params
from fedbench.engines.vmap_plan import plan_round
from fedbench.federation import Federation
from fedbench.store import nbytes


def unsupported_reason(method, model) -> str | None:
    """None when the vmap engine reproduces the sequential engine for `method` on `model`."""
    from methods.fedavg import FedAvg
    from methods.fedbsd import FedBSD

    cls = type(method)
    if getattr(cls, "local_update", None) is not FedAvg.local_update:
        return "its local update is not plain SGD on its loss"
    if getattr(cls, "loss", None) not in (FedAvg.loss, FedBSD.loss):
        return "its loss is not one the vmap engine knows to be vectorizable (FedAvg's, FedBSD's)"
    if getattr(cls, "upload", None) is not FedAvg.upload:
        return "it uploads something other than its model"
    if method.client_state(model):
        return "it keeps extra per-client state"
    if any(True for _ in model.buffers()):
        return "the model has buffers (e.g. BatchNorm statistics), which vmap cannot update per client"
    return None


class _Loss(nn.Module):
    """The method's loss as a module whose child is the live model, so that functional_call can
    substitute one client's parameters for the model's while the method's code runs. With weights
    `w` it is the weighted sum of the method's per-sample terms (loss(..., reduction="none")): a
    batch padded to a longer one, with w = 1/len on its samples and 0 on the padding, gives exactly
    the gradient of its own batch mean."""

    def __init__(self, model: nn.Module, fn):
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, x, y, w=None):
        if w is None:
            return self.fn(x, y, "mean")
        return (self.fn(x, y, "none") * w).sum()


@dataclass
class _ClientView:
    """What a vectorizable loss may touch of a client: the (substituted) model and the round's global
    model. Per-client identity and state are deliberately absent."""

    model: nn.Module
    hp: object
    round: int
    _global: object

    def global_model(self):
        return self._global()


class VmapFederation(Federation):
    # Groups smaller than this step client by client: a vmapped step of a few MLP clients costs ~4-5 plain
    # steps on a CPU (default run, min_group 4/5/6/8: 37.6/29.7/31.4/34.9 ms per FedAvg round, sequential
    # 45.0; FedBSD 39.6/38.3/38.2/42.2 vs 67.0).
    min_group = 5
    # Samples (clients x padded batch) per vmapped call: many clients per round are stepped in several
    # calls, so activation memory stays that of one batch of this size (a GPU's, for large models).
    max_call_samples = 4096
    engine = "vmap"

    def __init__(self, hp, data, model, method, rounds: int, join_ratio: float):
        super().__init__(hp, data, model, method, rounds, join_ratio)
        why = unsupported_reason(method, model)
        if why is not None:
            raise ValueError(f"engine=vmap cannot run method={method.name!r}: {why}")
        self.param_names = [n for n, _ in model.named_parameters()]
        personal = set(self.personal)
        self._to_store = [n for n in self.param_names if n in personal]  # written back after training
        from methods.fedavg import FedAvg

        self._needs_teacher = type(method).loss is not FedAvg.loss
        view = _ClientView(model, hp, 0, self.global_model)
        self._view = view
        self._loss_module = _Loss(model, lambda x, y, reduction: method.loss(view, x, y, reduction=reduction))

        def client_loss(params, x, y, w=None):
            return functional_call(self._loss_module, {"model." + k: v for k, v in params.items()}, (x, y, w))

        # w=None: the method's own mean loss; with w: its weighted per-sample terms (padded batches).
        # A vmapped forward and one plain backward of the clients' summed losses (each client's
        # parameters get exactly its own gradient): ~30% cheaper than vmap(grad(...)) on a CPU.
        self._loss_fn = vmap(client_loss)

    def plan(self, t: int, sampled: np.ndarray):
        """See fedbench.engines.vmap_plan.plan_round."""
        return plan_round(self.data, self.hp, t, sampled)

    # -- one round -------------------------------------------------------------------------------
    def train_round(self, t: int) -> float:
        sampled = self.schedule[t]
        m = len(sampled)
        dev = self.data.x.device
        lr, mom, wd = float(self.hp.lr_at(t)), float(self.hp.momentum), float(self.hp.weight_decay)
        groups, steps, order = self.plan(t, sampled)
        stack = sampled[order]
        rows = torch.as_tensor(stack, dtype=torch.int64, device=dev)
        live = dict(self.model.named_parameters())
        params = stacked_params(self, "train", rows, live)
        bufs = {n: torch.zeros_like(p) for n, p in params.items()} if mom != 0 else None
        totals = torch.zeros(m, device=dev)
        self.model.train()
        self._view.round = t
        if groups and self._needs_teacher:
            self.global_model()  # FedBSD's teacher: built and loaded here, outside the vmapped calls
        x, y = self.data.x, self.data.y
        for grp in groups:
            G = len(grp.pos)
            vmapped = G >= self.min_group
            size = max(1, self.max_call_samples // grp.idx.shape[1]) if vmapped else G
            for a in range(0, G, size):  # the clients still training (a prefix), in calls of <= size
                c = slice(a, min(G, a + size))
                sub = {n: p[c] for n, p in params.items()}  # views
                xb, yb = x[grp.idx[c]], y[grp.idx[c]]
                if vmapped:
                    grads, loss = self._vmapped_grads(sub, xb, yb, None if grp.w is None else grp.w[c])
                else:
                    grads, loss = self._plain_grads(sub, xb, yb, grp.lens)
                with torch.no_grad():
                    for n in self.param_names:
                        g = grads[n]
                        if wd != 0:
                            g = g.add(sub[n], alpha=wd)
                        if mom != 0:  # torch.optim.SGD: the first step's buffer is the gradient itself
                            buf = bufs[n][c]
                            buf.copy_(g) if grp.step == 0 else buf.mul_(mom).add_(g)
                            g = buf
                        sub[n].add_(g, alpha=-lr)
                    totals[c] += loss.detach()
        self._finish_round(t, stack, rows, params)
        losses = totals.cpu().numpy().astype(np.float64) / np.maximum(steps[order], 1)
        return float(np.mean(losses)) if m else float("nan")

    def _vmapped_grads(self, sub: dict, xb: torch.Tensor, yb: torch.Tensor, w: torch.Tensor | None
                       ) -> tuple[dict, torch.Tensor]:
        leaves = {n: p.detach().requires_grad_() for n, p in sub.items()}
        loss = self._loss_fn(leaves, xb, yb) if w is None else self._loss_fn(leaves, xb, yb, w)
        grads = torch.autograd.grad(loss.sum(), list(leaves.values()), allow_unused=True)
        return {n: torch.zeros_like(p) if g is None else g for (n, p), g in zip(sub.items(), grads)}, loss

    def _plain_grads(self, sub: dict, xb: torch.Tensor, yb: torch.Tensor, lens: list[int] | None
                     ) -> tuple[dict, torch.Tensor]:
        """The vmapped call's result for a small group, client by client on the live model with plain
        autograd on each client's own (unpadded) batch: a vmapped call has a fixed overhead of
        several plain steps."""
        live = dict(self.model.named_parameters())
        grads = {n: torch.empty_like(p) for n, p in sub.items()}
        losses = []
        for i in range(len(xb)):
            n_i = xb.shape[1] if lens is None else lens[i]
            with torch.no_grad():
                for n, p in live.items():
                    p.copy_(sub[n][i])
                    p.grad = None
            loss = self.method.loss(self._view, xb[i, :n_i], yb[i, :n_i])
            loss.backward()
            with torch.no_grad():
                for n, p in live.items():
                    if p.grad is None:
                        grads[n][i].zero_()
                    else:
                        grads[n][i].copy_(p.grad)
                    p.grad = None
            losses.append(loss.detach())
        return grads, torch.stack(losses)

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, t: int) -> dict[str, np.ndarray]:
        """As Federation.evaluate; when each client evaluates its own loaded model as it is (the default
        eval_model, no fine-tuning) and something is personal, all clients' models are evaluated as
        vmapped forwards over chunks of clients of similar size (samples padded to the chunk's
        longest, at most eval_batch_size in all), not one client at a time."""
        from methods.fedavg import FedAvg

        if (self._same_eval_model() or self.finetune
                or getattr(type(self.method), "eval_model", None) is not FedAvg.eval_model):
            return super().evaluate(t)
        return evaluate_vmapped(self)

    @torch.no_grad()
    def _finish_round(self, t: int, sampled: np.ndarray, rows: torch.Tensor, params: dict) -> None:
        """Upload, aggregation and personal-state write-back, as Federation.train_round does them."""
        m = len(sampled)
        for n in self._to_store:
            self.store.tensors[n].index_copy_(0, rows, params[n].to(self.store.tensors[n].dtype))
        down = nbytes(self.global_state)
        upload_bytes = sum(params[n][0].numel() * params[n].element_size() for n in self.shared)
        self.bytes_down += down * m
        self.bytes_up += upload_bytes * m
        np.add.at(self.times_sampled, sampled, 1)
        if not self.global_state or m == 0:
            return
        if self.method.weighting == "samples":
            w = torch.as_tensor(self.n_train[sampled], dtype=torch.float64)
        else:
            w = torch.ones(m, dtype=torch.float64)
        total_w = float(w.sum())
        mean = {}
        for n, g in self.global_state.items():
            acc_dtype = torch.float64 if g.dtype == torch.float64 else torch.float32
            stacked = params[n].to(acc_dtype)
            acc = torch.tensordot(w.to(stacked.device, acc_dtype), stacked, dims=1)
            v = acc / total_w
            mean[n] = v.to(g.dtype) if g.is_floating_point() else v.round().to(g.dtype)
        self.global_state = self.method.server_update(self.global_state, mean)
        self._teacher_fresh = False
