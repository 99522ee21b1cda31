"""Engines: how one round's local updates are executed. The science is the same in every engine.

  auto        (default) vmap where it can run the method and pays off, else sequential; see
              `auto_engine`. The engine a run used is recorded in its summary.json.
  sequential  fedbench.federation.Federation: the clients of a round one after the other on one
              reusable model (any method).
  vmap        fedbench.engines.vmap.VmapFederation: all sampled clients' SGD steps at once, as one
              `torch.func.vmap` over their stacked parameters (methods whose local update is plain
              minibatch SGD on their `loss`; see `vmap_support`).
Engines agree up to floating-point summation order (tested); a run's numbers are reproducible for
a given engine, device and thread count.
"""
from __future__ import annotations

import sys

from fedbench.errors import ConfigError

ENGINES = ("auto", "sequential", "vmap")


def vmap_support(method, model) -> str | None:
    """None when `method` on `model` can run on the vmap engine, else the reason it cannot."""
    from fedbench.engines.vmap import unsupported_reason

    return unsupported_reason(method, model)


def auto_engine(method, model, device, clients_per_round: int) -> str:
    """engine=auto: "vmap" when the vmap engine can run `method` on `model` and is expected to be
    faster, else "sequential". Measured with `python -m fedbench.bench --engines-check` on a 2-core
    CPU, one thread: FedAvg and FedBSD rounds of the MLP take 0.48x and 0.38x the sequential time
    vmapped; one vmapped step of 20 clients costs 0.24x their 20 sequential steps for the MLP, 0.58x
    for LeNet, but 1.11x for the CIFAR CNN (convolutions are compute-bound there), so convolutional
    models on a CPU stay sequential; with fewer clients per round than VmapFederation.min_group, the
    vmap engine would step client by client anyway."""
    from torch import nn

    from fedbench.engines.vmap import VmapFederation

    if vmap_support(method, model) is not None or clients_per_round < VmapFederation.min_group:
        return "sequential"
    convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return "sequential" if convolutional and getattr(device, "type", str(device)) == "cpu" else "vmap"


def build_federation(engine: str, hp, data, model, method, rounds: int, join_ratio: float, warn=None):
    """The Federation for `engine`; with engine=vmap, a method the vmap engine cannot run falls back
    to the sequential engine with one warning line (through `warn`, default stderr)."""
    from fedbench.federation import Federation, clients_per_round

    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}: choose one of: {', '.join(ENGINES)}")
    if engine == "auto":
        engine = auto_engine(method, model, data.x.device, clients_per_round(data.num_clients, join_ratio))
    if engine == "vmap":
        why = vmap_support(method, model)
        if why is None:
            from fedbench.engines.vmap import VmapFederation

            return VmapFederation(hp, data, model, method, rounds, join_ratio)
        (warn or (lambda m: print(m, file=sys.stderr)))(
            f"fedbench: warning: engine=vmap cannot run method={method.name!r} ({why}); "
            "using engine=sequential (same results)")
    return Federation(hp, data, model, method, rounds, join_ratio)
