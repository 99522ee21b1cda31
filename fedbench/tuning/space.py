"""What fedbench.tune searches: one lr list for every method (conf/tune.yaml) and each method's own keys
(`search` in conf/method/<name>.yaml: at most two keys, each at least four values that span its
authors' and PFLlib's defaults, the method's default among them), and the rule that extends a key past
the end of what was tried: the step between the two outermost values tried at that end (their ratio
on a log scale, the default; their difference with `scale: linear`), the same for every key of every
method, until the method's declared range (its class's `ranges`: mu >= 0, kappa in (0, 1]) stops it.

    search:
      lam: [0.1, 1.0, 10.0, 100.0]
      alpha: {values: [0.25, 0.5, 0.75, 1.0], scale: linear}
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from omegaconf import DictConfig, ListConfig, OmegaConf

from fedbench.config import CONF_DIR
from fedbench.config.keys import TOP_SPECS
from fedbench.config.specs import satisfies
from fedbench.errors import ConfigError

MAX_OWN_KEYS, MIN_VALUES = 2, 4
CONTROL_SUFFIX = "+bn"   # a method run on a BatchNorm model it does not need: the control of FedBN


@dataclass(frozen=True)
class Key:
    """One searched key: its override name (lr, method.<key>), its grid (ascending), its scale, its
    spec (what values the method allows) and whether it takes integers."""

    name: str
    values: tuple
    scale: str = "log"
    spec: object = "(0, inf)"

    @property
    def integer(self) -> bool:
        return isinstance(self.spec, str) and self.spec.startswith("int")

    def beyond(self, tried: list, end: str):
        """The next value past the `end` ('low' or 'high') of the sorted values `tried`: one more step
        of the two outermost values' ratio (log) or difference (linear); the closed bound itself when
        the step oversteps it; None when the key's range allows nothing further."""
        a, b = (tried[0], tried[1]) if end == "low" else (tried[-1], tried[-2])
        step_log = self.scale == "log" and a > 0 and b > 0
        nxt = a * (a / b) if step_log else a + (a - b)
        nxt = int(round(nxt)) if self.integer else float(f"{nxt:.6g}")
        if self.integer and nxt == a:
            nxt = a + (1 if end == "high" else -1)
        if satisfies(nxt, self.spec):
            return nxt
        bound = closed_bound(self.spec, end)
        beyond_a = bound is not None and (bound > a if end == "high" else bound < a)
        return (int(bound) if self.integer else float(bound)) if beyond_a else None

    def text(self, value) -> str:
        """The value as an override writes it (floats always with a point: 10.0, not 10: another hash)."""
        return str(int(value)) if self.integer else repr(float(value))


def closed_bound(spec, end: str) -> float | None:
    """The closed end (`[lo` or `hi]`) of a range spec on that side, else None."""
    found = re.search(r"([\[(])\s*([^,]+),\s*([^\])]+)([\])])", spec if isinstance(spec, str) else "")
    if not found:
        return None
    lo_br, lo, hi, hi_br = found.groups()
    if end == "low":
        return float(lo) if lo_br == "[" and lo.strip() != "-inf" else None
    return float(hi) if hi_br == "]" and hi.strip() != "inf" else None


@dataclass(frozen=True)
class Space:
    """A method's search: keys[0] is the lr (the common list), then its own keys; `defaults` holds
    each own key's default (where the lr search runs)."""

    method: str
    keys: tuple
    defaults: tuple

    @property
    def lr(self) -> Key:
        return self.keys[0]

    def start(self) -> tuple:
        """The configuration the search starts from: the smallest lr, the own keys at their defaults."""
        return (self.lr.values[0], *self.defaults)

    def overrides(self, config: tuple) -> list[str]:
        return [f"{k.name}={k.text(v)}" for k, v in zip(self.keys, config)]

    def in_grid(self, config: tuple) -> bool:
        """Whether every value is on its key's grid (else an extension trial)."""
        return all(_member(v, k.values) for k, v in zip(self.keys, config))


def _member(value, values) -> bool:
    return any(abs(float(value) - float(v)) <= 1e-12 * max(1.0, abs(float(v))) for v in values)


RECORD = "tune.yaml"   # what a tune's search was, kept in its results_dir


def tune_settings(results_dir=None) -> DictConfig:
    """conf/tune.yaml (lr, max_trials, jitter, tolerance), or the copy a tune recorded in `results_dir`
    (what its search used: fedbench.tune --lr/--max-trials change it for every method alike)."""
    from pathlib import Path

    recorded = Path(results_dir) / RECORD if results_dir is not None else None
    return _load(str(recorded if recorded is not None and recorded.is_file() else CONF_DIR / "tune.yaml"))


@lru_cache(maxsize=None)
def _load(path: str) -> DictConfig:
    node = OmegaConf.load(path)
    check_settings(node, path)
    return node


def check_settings(node: DictConfig, where: str) -> None:
    """ConfigError unless `node` is a sound search: 7+ ascending lrs over two decades, a budget >= them."""
    lrs = list(node.lr)
    if len(lrs) < 7 or sorted(set(lrs)) != lrs or not all(satisfies(v, TOP_SPECS["lr"]) for v in lrs) \
            or lrs[-1] / lrs[0] < 100 * (1 - 1e-9):
        raise ConfigError(f"{where} lr={lrs}: at least 7 ascending learning rates over at least two decades")
    if int(node.max_trials) < len(lrs):
        raise ConfigError(f"{where} max_trials={node.max_trials}: at least the lr list's length ({len(lrs)})")


def base_method(label: str) -> str:
    """The method of a tuned label (fedavg+bn -> fedavg)."""
    return label.removesuffix(CONTROL_SUFFIX)


def space_of(label: str, lr: tuple | None = None) -> Space:
    """The search space of method `label` (a control such as fedavg+bn searches as its method) with
    the lr list `lr` (default conf/tune.yaml's); ConfigError naming the yaml and the problem when
    `search` is malformed."""
    return _space(label, tuple(float(v) for v in (lr if lr is not None else tune_settings().lr)))


@lru_cache(maxsize=None)
def _space(label: str, lr: tuple) -> Space:
    from fedbench.config import method_class
    from fedbench.config.method_parts import own_specs

    method = base_method(label)
    specs = own_specs(method_class(method))   # an unknown method: ConfigError listing the valid ones
    node = OmegaConf.load(CONF_DIR / "method" / f"{method}.yaml")
    where = f"conf/method/{method}.yaml search"
    search = node.get("search") if node.get("search") is not None else OmegaConf.create({})
    if not isinstance(search, DictConfig):
        raise ConfigError(f"{where}: must map each own key to its values, e.g. {{lam: [0.1, 1.0, 10.0, 100.0]}}")
    if len(search) > MAX_OWN_KEYS:
        raise ConfigError(f"{where}: {len(search)} keys; at most {MAX_OWN_KEYS} of the method's own")
    keys, defaults = [Key("lr", lr, "log", TOP_SPECS["lr"])], []
    for name, entry in search.items():
        if name not in specs:
            raise ConfigError(f"{where}: {name}: not a key of method={method} (its keys: {', '.join(specs) or 'none'})")
        entry = entry if isinstance(entry, DictConfig) else OmegaConf.create({"values": entry})
        values, scale = entry.get("values"), entry.get("scale", "log")
        if not isinstance(values, ListConfig) or len(values) < MIN_VALUES or scale not in ("log", "linear"):
            raise ConfigError(f"{where}: {name}: at least {MIN_VALUES} values (scale log or linear)")
        values = sorted(values)
        bad = [v for v in values if not satisfies(v, specs[name])]
        default = node.get(name)
        if bad or len(set(values)) != len(values):
            raise ConfigError(f"{where}: {name}: {bad or values} outside what method={method} allows ({specs[name]})")
        if not _member(default, values):
            raise ConfigError(f"{where}: {name}: the default {default} must be one of the values {values}")
        keys.append(Key(f"method.{name}", tuple(values), scale, specs[name]))
        defaults.append(default)
    return Space(label, tuple(keys), tuple(defaults))
