"""Engines: how one round's local updates are executed. The science is the same in every engine.

  sequential  fedbench.federation.Federation: the clients of a round one after the other on one
              reusable model (any method).
  vmap        fedbench.engines.vmap.VmapFederation: all sampled clients' SGD steps at once, as one
              `torch.func.vmap` over their stacked parameters (methods whose local update is plain
              minibatch SGD on their `loss`; see `vmap_support`). Meant for GPUs.
"""
from __future__ import annotations

import sys

from fedbench.errors import ConfigError

ENGINES = ("sequential", "vmap")


def vmap_support(method, model) -> str | None:
    """None when `method` on `model` can run on the vmap engine, else the reason it cannot."""
    from fedbench.engines.vmap import unsupported_reason

    return unsupported_reason(method, model)


def build_federation(engine: str, hp, data, model, method, rounds: int, join_ratio: float, warn=None):
    """The Federation for `engine`; a method the vmap engine cannot run falls back to the sequential
    engine with one warning line (through `warn`, default stderr)."""
    from fedbench.federation import Federation

    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}: choose one of: {', '.join(ENGINES)}")
    if engine == "vmap":
        why = vmap_support(method, model)
        if why is None:
            from fedbench.engines.vmap import VmapFederation

            return VmapFederation(hp, data, model, method, rounds, join_ratio)
        (warn or (lambda m: print(m, file=sys.stderr)))(
            f"fedbench: warning: engine=vmap cannot run method={method.name!r} ({why}); "
            "using engine=sequential (same results)")
    return Federation(hp, data, model, method, rounds, join_ratio)
