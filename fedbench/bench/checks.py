"""Micro-measurements behind two defaults, printed by `python -m fedbench.bench --engines-check
--threads-check`: one local step of 20 clients one by one vs vmapped (engine=auto), and an SGD step
with one torch thread vs all cores (threads=auto)."""
from __future__ import annotations

import os
import time

import numpy as np
import torch
import torch.nn.functional as F


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engines_check(device: torch.device, clients: int = 20, batch: int = 10, reps: int = 3) -> str:
    """ms for one local step of `clients` clients: one after the other on one model (plain autograd +
    torch.optim.SGD) vs one vmapped forward + backward over their stacked parameters (engine=vmap's
    call), for the MLP, LeNet and the CIFAR CNN."""
    from torch.func import functional_call, vmap

    from fedbench.models.cnn import cnn, lenet
    from fedbench.models.mlp import mlp

    lines = [f"| model | {clients} clients one by one, ms | vmapped, ms | vmapped / one by one |", "|---|---|---|---|"]
    torch.manual_seed(0)
    for name, model, shape, n in (("mlp 64-128-64-10", mlp((64,), 10), (64,), 20),
                                  ("lenet (28x28)", lenet((1, 28, 28), 10), (1, 28, 28), 5),
                                  ("cnn (CIFAR)", cnn((3, 32, 32), 10), (3, 32, 32), 3)):
        model = model.to(device)
        x = torch.randn(clients, batch, *shape, device=device)
        y = torch.randint(0, 10, (clients, batch), device=device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        stacked = {k: p.detach().unsqueeze(0).repeat(clients, *[1] * p.dim()) for k, p in model.named_parameters()}
        losses = vmap(lambda p, xb, yb: F.cross_entropy(functional_call(model, p, (xb,)), yb))

        def one_by_one():
            for k in range(clients):
                opt.zero_grad()
                F.cross_entropy(model(x[k]), y[k]).backward()
                opt.step()

        def vmapped():
            leaves = {k: p.detach().requires_grad_() for k, p in stacked.items()}
            torch.autograd.grad(losses(leaves, x, y).sum(), list(leaves.values()))

        res = {f: [] for f in (one_by_one, vmapped)}
        for _ in range(reps):
            for f in res:
                f()
                sync(device)
                t0 = time.perf_counter()
                for _ in range(n):
                    f()
                sync(device)
                res[f].append((time.perf_counter() - t0) / n * 1e3)
        a, b = np.median(res[one_by_one]), np.median(res[vmapped])
        lines.append(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    return "\n".join(lines)


def threads_check(reps: int = 3) -> str:
    """ms per SGD step (median of `reps`) with 1 thread and with every core, for the default MLP and the
    CIFAR CNN at batch 10: the measurement behind threads=auto."""
    from fedbench.models.cnn import cnn
    from fedbench.models.mlp import mlp

    cores = os.cpu_count() or 1
    before = torch.get_num_threads()
    lines = [f"| model, batch | 1 thread ms/step | {cores} threads ms/step |", "|---|---|---|"]
    torch.manual_seed(0)
    for name, model, x, steps in (("mlp 64-128-64-10, 10", mlp((64,), 10), torch.randn(10, 64), 200),
                                  ("cnn (CIFAR), 10", cnn((3, 32, 32), 10), torch.randn(10, 3, 32, 32), 20),
                                  ("cnn (CIFAR), 64", cnn((3, 32, 32), 10), torch.randn(64, 3, 32, 32), 5)):
        y = torch.randint(0, 10, (len(x),))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        res = {1: [], cores: []}
        for _ in range(reps):
            for n in res:
                torch.set_num_threads(n)
                t0 = time.perf_counter()
                for _ in range(steps):
                    opt.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    opt.step()
                res[n].append((time.perf_counter() - t0) / steps * 1e3)
        lines.append(f"| {name} | {np.median(res[1]):.2f} | {np.median(res[cores]):.2f} |")
    torch.set_num_threads(before)
    return "\n".join(lines)
