"""Per-FedAvg (Fallah, Mokhtari & Ozdaglar, "Personalized Federated Learning with Theoretical
Guarantees: A Model-Agnostic Meta-Learning Approach", NeurIPS 2020).

Difference from FedAvg: the local update is a MAML meta-step on min_w f(w - alpha grad f(w)). Each of
the tau steps (`local_steps`) draws fresh minibatches D, D' (and D'' for HF):
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
    weighting = "uniform"  # plain mean of the sampled clients' models (the paper; FL-bench weight 1)
    ranges = {"variant": ("fo", "hf"), "alpha": "(0, inf)", "beta": "(0, inf) or null", "delta": "(0, inf)",
              "local_steps": "int [1, inf)"}  # checked before any work

    def local_update(self, cohort):
        beta = float(cohort.lr if self.hp.beta is None else self.hp.beta)
        alpha, hf = float(self.hp.alpha), self.hp.variant == "hf"
        w = cohort.model.tensors(params_only=True)
        stream = iter(cohort.minibatches(self.hp.local_steps * (3 if hf else 2)))
        losses = []
        for d, d_prime in zip(stream, stream):  # two fresh batches per step (a third below for hf)
            g, _ = cohort.grad(self.loss, w, d)
            g, loss = cohort.grad(self.loss, axpy(-alpha, g, w), d_prime)
            if hf:
                hg = hvp_fd(cohort, self.loss, w, g, next(stream), float(self.hp.delta))
                g = axpy(-alpha, hg, g)
            with torch.no_grad():
                for k, p in w.items():
                    p.add_(g[k], alpha=-beta)
            losses.append(loss)
        return torch.stack(losses, 1).mean(1).cpu().double().numpy() if losses else torch.zeros(cohort.size).numpy()

    def adapt(self, cohort) -> None:
        """The global model after one alpha-step on one train minibatch (the evaluation copy)."""
        cohort.sgd(self.loss, lr=float(self.hp.alpha), momentum=0.0, weight_decay=0.0, batches=cohort.minibatches(1))
