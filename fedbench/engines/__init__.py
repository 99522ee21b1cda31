"""Engines: how a round's clients are grouped into cohorts and how a cohort is stepped. The round is
fedbench.federation's; an engine is a strategy it is given, "compute these gradients (or logits) over
these stacked tensors", and never sees the federation. The science is the same in every engine.

  auto        (default) vmap where it can run the method and pays off, else sequential; see
              `auto_engine`. The engines a run used are recorded in its summary.json.
  sequential  fedbench.engines.sequential: the clients one after the other (any method, any model).
  vmap        fedbench.engines.vmap: all sampled clients as one cohort, each step one vectorized call
              (methods that declare `vectorizable`, on models without buffers).
Engines agree up to floating-point summation order (tested); a run's numbers are reproducible for
a given engine, device and thread count.
"""
from __future__ import annotations

import sys

from torch import nn

from fedbench.engines.sequential import SequentialEngine
from fedbench.engines.vmap import VmapEngine

ENGINES = {engine.name: engine for engine in (SequentialEngine, VmapEngine)}
CHOICES = ("auto", *ENGINES)   # the values of the `engine` config key


def vmap_support(method, model) -> str | None:
    """None when the vmap engine can run `method` on `model`, else the reason it cannot (read from
    what the method declares and what the model holds)."""
    if not method.vectorizable:
        return method.why_not_vectorizable
    if any(True for _ in model.buffers()):
        return "the model has buffers (e.g. BatchNorm statistics), which vmap cannot update per client"
    return None


def auto_engine(method, model, device, clients_per_round: int) -> str:
    """engine=auto: "vmap" when the vmap engine can run `method` on `model` and is expected to be
    faster, else "sequential". Measured with `python -m fedbench.bench --engines-check` on a 2-core
    CPU, one thread: one vmapped step of 20 clients costs 0.24x their 20 sequential steps for the
    MLP, 0.58x for LeNet, but 1.11x for the CIFAR CNN (convolutions are compute-bound there), so
    convolutional models on a CPU stay sequential; with fewer clients per round than
    VmapEngine.min_group, the vmap engine would step client by client anyway."""
    if vmap_support(method, model) is not None or clients_per_round < VmapEngine.min_group:
        return "sequential"
    convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return "sequential" if convolutional and getattr(device, "type", str(device)) == "cpu" else "vmap"


def choose_engine(name: str, method, model, device, clients_per_round: int, warn=None):
    """The engine for the `engine` key `name` (validated by fedbench.config); with engine=vmap, a
    method the vmap engine cannot run falls back to the sequential engine with one warning line
    (through `warn`, default stderr)."""
    if name == "auto":
        name = auto_engine(method, model, device, clients_per_round)
    if name == "vmap" and (why := vmap_support(method, model)) is not None:
        (warn or (lambda m: print(m, file=sys.stderr)))(
            f"fedbench: warning: engine=vmap cannot run method={method.name!r} ({why}); "
            "using engine=sequential (same results)")
        name = "sequential"
    return ENGINES[name]()
