"""engine=vmap: a round's local updates as one vectorized computation over the sampled clients.

For methods whose local update is plain minibatch SGD on their `loss` (FedAvg, FedPer, FedBSD,
Local, LG-FedAvg, FedAvg-FT): the sampled clients' starting parameters (global, then personal from
the client store, as `Federation.load` does) are stacked along a new first dimension, and each SGD
step of every client is one call of `vmap(grad_and_value(loss))` over that stack. The method's own
`loss` runs inside, on the live model with the client's parameters substituted
(`torch.func.functional_call`), so FedBSD's distillation term is FedBSD's code, not a copy.

Same results as engine=sequential, up to floating point: every client sees exactly the batches the
sequential engine gives it (the same data-order stream and batching rule, see Client.batches), with
the same SGD arithmetic (torch.optim.SGD's, incl. momentum and weight decay, a fresh optimizer per
client and round). Clients with different numbers of samples take different numbers of steps and
have differently sized last batches: at each step, the clients still training are grouped by batch
size and each group is one vmapped call (no padding, so batch means are exact); a client that has
finished simply leaves the groups. The differences from the sequential engine are summation order
only (batched matrix products, the weighted mean as one tensor product).

Meant for GPUs, where one round becomes a few kernel launches per step instead of one model per
client. On a CPU it can be slower or faster depending on the model (fedbench.bench measures it).
Evaluation is vectorized too when every client evaluates its own loaded model (the default
eval_model, no fine-tuning): chunks of clients' models as one vmapped forward each; otherwise (and
fine-tuning before it) it is the sequential engine's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from fedbench.engines.vmap_eval import evaluate_vmapped
from fedbench.federation import Federation
from fedbench.seeding import torch_generator
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
    substitute one client's parameters for the model's while the method's code runs."""

    def __init__(self, model: nn.Module, fn):
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, x, y):
        return self.fn(x, y)


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


@dataclass
class _Group:
    """One vmapped call: the clients at positions `pos` of the round's stack take a step on the
    batches `idx` (G, b) of sample indices; `full` when pos is every client of the round in order."""

    step: int
    pos: torch.Tensor
    idx: torch.Tensor
    full: bool


class VmapFederation(Federation):
    # Groups smaller than this step client by client: one vmapped call of a small model costs about as
    # much as 8-10 plain steps (fedbench.bench, MLP on CPU), so tiny groups gain nothing from it.
    min_group = 8
    engine = "vmap"

    def __init__(self, hp, data, model, method, rounds: int, join_ratio: float):
        super().__init__(hp, data, model, method, rounds, join_ratio)
        why = unsupported_reason(method, model)
        if why is not None:
            raise ValueError(f"engine=vmap cannot run method={method.name!r}: {why}")
        self.param_names = [n for n, _ in model.named_parameters()]
        personal = set(self.personal)
        self._from_store = [n for n in self.param_names if n in personal]
        from methods.fedavg import FedAvg

        self._needs_teacher = type(method).loss is not FedAvg.loss
        view = _ClientView(model, hp, 0, self.global_model)
        self._view = view
        self._loss_module = _Loss(model, lambda x, y: method.loss(view, x, y))

        def client_loss(params, x, y):
            return functional_call(self._loss_module, {"model." + k: v for k, v in params.items()}, (x, y))

        self._step_fn = vmap(grad_and_value(client_loss))

    # -- the round's batch plan ------------------------------------------------------------------
    def plan(self, t: int, sampled: np.ndarray) -> tuple[list[_Group], np.ndarray]:
        """The groups of every step of round t, and each sampled client's number of steps. Client k's
        batches are exactly those of `Client(k, round=t, stream="data").batches(local_epochs)`."""
        dev, size, epochs = self.data.x.device, self.hp.batch_size, self.hp.local_epochs
        per_client, steps = [], np.zeros(len(sampled), dtype=np.int64)
        for j, k in enumerate(sampled):
            idx = self.data.clients[k].train
            n = len(idx)
            g = torch_generator(self.hp.seed, "data", t, int(k))
            starts = list(range(0, n, size))
            if len(starts) > 1 and n - starts[-1] == 1:
                starts.pop()
            ends = starts[1:] + [n]
            idx_cpu = idx.cpu()
            batches = []
            for _ in range(epochs):
                order = idx_cpu[torch.randperm(n, generator=g)]
                batches += [order[a:b] for a, b in zip(starts, ends)]
            per_client.append(batches)
            steps[j] = len(batches)
        groups: list[_Group] = []
        flat_idx, flat_pos, spans = [], [], []
        offset_i = offset_p = 0
        for s in range(int(steps.max()) if len(steps) else 0):
            by_size: dict[int, list[int]] = {}
            for j, batches in enumerate(per_client):
                if s < len(batches):
                    by_size.setdefault(len(batches[s]), []).append(j)
            for b, members in sorted(by_size.items(), key=lambda kv: kv[1][0]):
                mat = torch.stack([per_client[j][s] for j in members])
                flat_idx.append(mat.reshape(-1))
                flat_pos.append(torch.tensor(members, dtype=torch.int64))
                spans.append((s, offset_i, len(members), b, offset_p, len(members) == len(sampled)))
                offset_i += mat.numel()
                offset_p += len(members)
        if spans:  # one host-to-device copy per round
            all_idx = torch.cat(flat_idx).to(dev, non_blocking=True)
            all_pos = torch.cat(flat_pos).to(dev, non_blocking=True)
            for s, oi, G, b, op, full in spans:
                groups.append(_Group(s, all_pos[op:op + G], all_idx[oi:oi + G * b].view(G, b), full))
        return groups, steps

    # -- one round -------------------------------------------------------------------------------
    def train_round(self, t: int) -> float:
        sampled = self.schedule[t]
        m = len(sampled)
        dev = self.data.x.device
        lr, mom, wd = float(self.hp.lr), float(self.hp.momentum), float(self.hp.weight_decay)
        base = self.fixed | self.global_state
        rows = torch.as_tensor(sampled, dtype=torch.int64, device=dev)
        live = dict(self.model.named_parameters())
        params = {n: (self.store.tensors[n].index_select(0, rows) if n in self._from_store
                      else base.get(n, live[n].detach()).unsqueeze(0).repeat(m, *([1] * live[n].dim())))
                  for n in self.param_names}
        bufs = {n: torch.zeros_like(p) for n, p in params.items()} if mom != 0 else None
        groups, steps = self.plan(t, sampled)
        totals = torch.zeros(m, device=dev)
        self.model.train()
        self._view.round = t
        if groups and self._needs_teacher:
            self.global_model()  # FedBSD's teacher: built and loaded here, outside the vmapped calls
        x, y = self.data.x, self.data.y
        for grp in groups:
            if grp.full:
                sub = params
            else:
                sub = {n: p.index_select(0, grp.pos) for n, p in params.items()}
            if len(grp.pos) >= self.min_group:
                grads, loss = self._step_fn(sub, x[grp.idx], y[grp.idx])
            else:
                grads, loss = self._plain_grads(sub, x[grp.idx], y[grp.idx])
            with torch.no_grad():
                for n in self.param_names:
                    g = grads[n]
                    if wd != 0:
                        g = g.add(sub[n], alpha=wd)
                    if mom != 0:
                        if grp.step == 0:  # the first step of every client that trains at all
                            buf = g.detach().clone()
                        else:
                            buf = bufs[n] if grp.full else bufs[n].index_select(0, grp.pos)
                            buf.mul_(mom).add_(g)
                        if grp.full:
                            bufs[n] = buf
                        else:
                            bufs[n].index_copy_(0, grp.pos, buf)
                        g = buf
                    sub[n].add_(g, alpha=-lr)
                    if not grp.full:
                        params[n].index_copy_(0, grp.pos, sub[n])
                totals.index_add_(0, grp.pos, loss.detach())
        self._finish_round(t, sampled, rows, params)
        losses = totals.cpu().numpy().astype(np.float64) / np.maximum(steps, 1)
        return float(np.mean(losses)) if m else float("nan")

    def _plain_grads(self, sub: dict, xb: torch.Tensor, yb: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """The vmapped call's result for a small group, client by client on the live model with plain
        autograd (a vmapped call has a fixed overhead of several plain steps)."""
        live = dict(self.model.named_parameters())
        grads = {n: torch.empty_like(p) for n, p in sub.items()}
        losses = []
        for i in range(len(xb)):
            with torch.no_grad():
                for n, p in live.items():
                    p.copy_(sub[n][i])
                    p.grad = None
            loss = self.method.loss(self._view, xb[i], yb[i])
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
        for n in self._from_store:
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
