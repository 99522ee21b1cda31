"""One optimizer protocol for every method: what a run trains with, and its learning-rate schedule.

Every method trains with the run's optimizer: SGD with the run-level `lr`, `momentum`,
`weight_decay` and lr schedule (`lr_schedule`: constant, or step = x `lr_gamma` at each fraction
`lr_milestones` of the rounds; FedBABU's official schedule is step at 0.5 and 0.75 with 0.1). A
method config may set any of these keys itself (null, the default, means the run's value), and
`method.official=true` selects the method's official-code optimizer (`method.official_optimizer`)
for every key the method config leaves null. Precedence: method key > official (if on) > run key.
"""
from __future__ import annotations

OPTIMIZER_KEYS = ("lr", "momentum", "weight_decay", "lr_schedule", "lr_milestones", "lr_gamma")


def resolve_optimizer(cfg) -> dict:
    """The optimizer settings a run trains with (see the module docstring), as plain values."""
    method = cfg.method
    official = (method.get("official_optimizer") or {}) if method.get("official", False) else {}
    out = {}
    for key in OPTIMIZER_KEYS:
        value = method.get(key)
        if value is None:
            value = official.get(key)
        if value is None:
            value = cfg.get(key)
        out[key] = value
    out["lr_milestones"] = [float(m) for m in out["lr_milestones"] or ()]
    for key in ("lr", "momentum", "weight_decay", "lr_gamma"):
        out[key] = float(out[key])
    out["lr_schedule"] = str(out["lr_schedule"])
    return out


def lr_at(lr: float, schedule: str, milestones, gamma: float, rounds: int, t: int) -> float:
    """The learning rate of round t (0-based) of `rounds`: lr, times gamma once for each distinct
    milestone round floor(m * rounds) > 0 that t has reached (FedBABU's official main_fed.py decays
    after round R//2 and 3R//4: `if (iter + 1) in [R//2, 3R//4]`)."""
    if schedule == "constant":
        return lr
    decays = {int(m * rounds) for m in milestones} - {0}
    return lr * gamma ** sum(t >= d for d in decays)
