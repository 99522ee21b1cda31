"""Per-FedAvg (Fallah, Mokhtari & Ozdaglar, "Personalized Federated Learning with Theoretical
Guarantees: A Model-Agnostic Meta-Learning Approach", NeurIPS 2020).

Difference from FedAvg: the local update is a MAML meta-step on min_w f(w - alpha grad f(w)). It takes
one meta-step per minibatch D of the round's local epochs (FedAvg's passes and step count; with
method.official=true the reimplementations' tau = `local_steps` steps), each with fresh extra
minibatches D' (and D'' for HF) drawn from further shuffled passes over the same data, so a round costs
FedAvg's training samples plus one extra batch per step (two for HF, whose D'' is used twice):
    w~ = w - alpha grad f(w; D);  g = grad f(w~; D')            (g computed at w~ ...)
    fo: w <- w - beta g;   hf: w <- w - beta (g - alpha H(w; D'') g)   (... applied to w)
with the Hessian-vector product by central differences of gradients at w +- delta g (the form of the
authors' MATLAB quoted in KarhouTam/Per-FedAvg#2). The meta step is plain SGD (no momentum).
Evaluated model: each client adapts the received global model by ONE SGD step of size alpha on ONE
minibatch of its TRAIN split, then tests it (the paper's personalization; the pFedMe and FedBABU
repositories adapt on test data, and FL-bench for a whole epoch: both differ).
Server: uniform mean of the sampled clients' models (the paper).
"""
from __future__ import annotations

import torch

from fedbench.toolkit.functional import axpy, hvp_fd
from methods import register
from methods.fedavg import FedAvg

@register
class PerFedAvg(FedAvg):
    name = "perfedavg"
    newcomer = "evaluate"  # the paper's premise: a new user adapts the meta-model with its one step (adapt)
    paper = "https://arxiv.org/abs/2002.07948"
    weighting = "uniform"  # plain mean of the sampled clients' models (the paper; FL-bench weight 1)
    ranges = {"variant": ("fo", "hf"), "alpha": "(0, inf)", "beta": "(0, inf) or null", "delta": "(0, inf)",
              "local_steps": "int [1, inf)"}  # checked before any work
    official_schedule = "tau = local_steps meta-steps per round (pFedMe repo: 20), fresh batches each"
    per_minibatch = "one meta-step: a gradient at w on D, one at w - alpha g on an extra batch D' (hf: + D'')"

    def local_update(self, cohort):
        beta = float(cohort.lr if self.hp.beta is None else self.hp.beta)
        alpha, hf = float(self.hp.alpha), self.hp.variant == "hf"
        w = cohort.model.tensors(params_only=True)
        per_step = 3 if hf else 2
        if self.hp.official:  # tau steps, each on the next per_step batches of the data stream
            stream = iter(cohort.minibatches(self.hp.local_steps * per_step))
            steps = zip(*[stream] * per_step)
        else:  # D walks the local epochs; D' (D'') come from further passes over the same data
            steps = zip(*[cohort.batches() for _ in range(per_step)])
        totals, counts = torch.zeros(cohort.size, dtype=torch.float64), torch.zeros(cohort.size)
        for d, d_prime, *d_second in steps:
            at = {k: p[:d.active] for k, p in w.items()}   # the clients still stepping (the largest first)
            g, _ = cohort.grad(self.loss, at, d)
            g, loss = cohort.grad(self.loss, axpy(-alpha, g, at), d_prime)
            if hf:
                hg = hvp_fd(cohort, self.loss, at, g, d_second[0], float(self.hp.delta))
                g = axpy(-alpha, hg, g)
            with torch.no_grad():
                for k, p in at.items():
                    p.add_(g[k], alpha=-beta)
            totals[:d.active] += loss.detach().cpu().double()
            counts[:d.active] += 1
        return (totals / counts.clamp(min=1)).numpy()

    def adapt(self, cohort) -> None:
        """The global model after one alpha-step on one train minibatch (the evaluation copy)."""
        cohort.sgd(self.loss, lr=float(self.hp.alpha), momentum=0.0, weight_decay=0.0, batches=cohort.minibatches(1))
