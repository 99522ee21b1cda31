"""The small spec language for config values (see fedbench.config): a spec string such as
"int [1, inf)", "(0, 1]", "null or (0, inf)", "list of int [1, inf)", or a tuple of allowed values;
`check(key, value, spec)` raises one ConfigError line naming the key, the value and what is allowed."""
from __future__ import annotations

import functools
import math

from omegaconf import DictConfig, ListConfig, OmegaConf

from fedbench.errors import ConfigError


def _show(value) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    return repr(value)


def _bound(token: str) -> float:
    return math.inf if token.strip() in ("inf", "+inf") else (-math.inf if token.strip() == "-inf" else float(token))


@functools.lru_cache(maxsize=None)
def _alternative(text: str):
    """One alternative of a spec string -> (predicate, description)."""
    text = text.strip()
    if text == "null":
        return (lambda v: v is None), "null"
    if text == "bool":
        return (lambda v: isinstance(v, bool)), "true or false"
    if text == "str":
        return (lambda v: isinstance(v, str) and v != ""), "a non-empty string"
    if text.startswith("list of "):
        item, what = _alternative(text[len("list of "):])
        return (lambda v: isinstance(v, (list, tuple, ListConfig)) and all(item(x) for x in v)), f"a list, each item {what}"
    integer = text.startswith("int ")
    if integer:
        text = text[4:].strip()
    if text[:1] in "[(" and text[-1:] in "])":
        lo_text, hi_text = text[1:-1].split(",")
        lo, hi = _bound(lo_text), _bound(hi_text)
        lo_open, hi_open = text[0] == "(", text[-1] == ")"

        def pred(v, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, integer=integer):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
                return False
            if not math.isfinite(v):
                return False
            return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

        fmt = (lambda x: "%g" % x) if not integer else (lambda x: str(int(x)))
        kind = "an integer" if integer else "a number"
        if hi == math.inf:
            what = f"{kind} {'>' if lo_open else '>='} {fmt(lo)}"
        elif lo == -math.inf:
            what = f"{kind} {'<' if hi_open else '<='} {fmt(hi)}"
        else:
            what = f"{kind} in {text[0]}{fmt(lo)}, {fmt(hi)}{text[-1]}"
        return pred, what
    return (lambda v, word=text: v == word), repr(text)


def describe(spec) -> str:
    if isinstance(spec, (tuple, list)):
        return "one of: " + ", ".join(map(str, spec))
    return " or ".join(_alternative(a)[1] for a in spec.split(" or "))


def satisfies(value, spec) -> bool:
    if isinstance(spec, (tuple, list)):
        return isinstance(value, (str, int, float, bool)) and value in spec
    return any(_alternative(a)[0](value) for a in spec.split(" or "))


def check(key: str, value, spec) -> None:
    """ConfigError `key=value: must be <what spec allows>` unless `value` satisfies `spec`."""
    if not satisfies(value, spec):
        raise ConfigError(f"{key}={_show(value)}: must be {describe(spec)}")


def check_mapping(prefix: str, node, specs: dict, valid: str | None = None, extra=(), owner: str = "") -> None:
    """Every key of the mapping `node` is one of `specs` (or of `extra`, keys with no spec, and 'name')
    and each present key of `specs` satisfies its spec: one ConfigError line naming `prefix.key`
    otherwise (`valid` lists the allowed keys in the message, default: the known keys; `owner`, e.g.
    "partition=dirichlet", says whose keys they are)."""
    known = set(specs) | set(extra) | {"name"}
    full = (lambda key: f"{prefix}.{key}") if prefix else str
    for key in node:
        if key not in known:
            listed = valid or ", ".join(sorted(known - {"name"})) or "(none)"
            whose = f" for {owner}" if owner else ""
            raise ConfigError(f"{full(key)}={_show(node.get(key))}: unknown key{whose}; valid keys: {listed}")
    for key, spec in specs.items():
        if key in node:
            check(full(key), node.get(key), spec)
