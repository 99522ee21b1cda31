"""Collect run directories into one frame: one row per run, with its setting and method variant.

A *setting* is everything that defines the experiment except the method and the seed: the run's
resolved config.yaml minus `method`, `seed` and the execution-only keys (results.NON_SCIENTIFIC).
The run's optimizer keys (lr, momentum, ...: fedbench.optimizer) belong to the method's
configuration, not to the setting: every method trains with the run's optimizer, and tuning sweeps it.
A *variant* is a method name plus any of its hyperparameters or optimizer keys that differ between
runs of that method, so e.g. fedprox with mu=0.01 and mu=0.1 are two rows of a table, never averaged
together; the differing keys are also columns of the frame, named as on the command line (lr,
method.mu).
"""
from __future__ import annotations

import hashlib
import json
import math
import shlex
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import OmegaConf

from fedbench.optimizer import OPTIMIZER_KEYS
from fedbench.metrics import COMPUTE_FIELDS, UNSEEN_FIELDS
from fedbench.report.labels import setting_names
from fedbench.rundir import CONFIG, SUMMARY, RunDir, completion, scientific_config

HEADLINE = ("acc", "acc_weighted", "acc_std", "acc_bottom10", "val_acc")
RUN_FIELDS = ("status", "dataset", "partition", "num_clients", "model", "method", "seed", "rounds",
              "rounds_done", "best_round", "wall_time_s", "bytes_up", "bytes_down", "diverged_round",
              "error", "config_hash", "partition_cache", "engines", "device", "threads", "torch", "float_path", "cpu", "overrides",
              *COMPUTE_FIELDS, "compute_flops", *UNSEEN_FIELDS)
STATUS_OK = "complete"


class ReportError(Exception):
    """Bad input to the report (no runs, unknown filter key, ...): one line for the user."""


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become their JSON text so they can be compared."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, f"{key}.")
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else v
    return out


def _digest(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


def setting_of(flat: dict) -> dict:
    """The setting part of a run's flat scientific config: everything but the method's configuration
    (configuration_key) and the seed."""
    return {k: v for k, v in flat.items() if not configuration_key(k) and k != "seed"}


def setting_key(flat: dict) -> str:
    """The setting's digest (summary.csv's setting_key); trackers group runs by it too."""
    return _digest(setting_of(flat))


def find_run_dirs(results_dir: Path) -> list[Path]:
    """Every directory under results_dir/runs holding a summary.json or a config.yaml, but the copies
    of finished runs that other code superseded (completion.SUPERSEDED_PREFIX: kept for the user, never
    reported)."""
    runs = Path(results_dir) / "runs"
    found = {p.parent for name in (SUMMARY, CONFIG) for p in runs.rglob(name)}
    return sorted(p for p in found if not any(part.startswith(completion.SUPERSEDED_PREFIX)
                                              for part in p.relative_to(runs).parts))


def load_run(path: Path, results_dir: Path) -> tuple[dict, dict]:
    """(row, flat scientific config) of one run directory. An absent summary gives status 'missing';
    an unreadable one, a complete run whose files disagree with its summary or cannot be read, and a
    copy a rerun put aside (completion.put_aside) give status 'damaged', with the reason in `error`."""
    summary = RunDir(path).summary()
    if summary is None:
        exists = (path / SUMMARY).exists()
        summary = {"status": "damaged" if exists else "missing",
                   "error": "summary.json is not a JSON object in UTF-8" if exists else "summary.json is missing"}
    try:
        config = OmegaConf.to_container(OmegaConf.load(path / CONFIG), resolve=True)
        if not isinstance(config, dict):
            raise ValueError("not a mapping")
        config = scientific_config(OmegaConf.create(config))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        config = {}
        summary.setdefault("error", f"config.yaml unreadable: {type(exc).__name__}")
        if summary["status"] != "damaged":
            summary["status"] = "missing"
    if any(p.startswith(completion.ASIDE_PREFIX) for p in path.relative_to(results_dir).parts):
        try:
            why = (path / completion.REASON_FILE).read_text(errors="replace").strip()
        except OSError:
            why = "reason not recorded"
        summary |= {"status": "damaged", "error": f"files kept aside by a rerun ({why}); delete the folder "
                                                  "once you no longer need them"}
    elif summary.get("status") == STATUS_OK and (why := completion.damage(path, summary)):
        summary |= {"status": "damaged", "error": f"{why}; running the same command again keeps these files "
                                                  "aside and recomputes the run"}
    row = {"run_dir": str(path.relative_to(results_dir))}
    row |= {k: summary.get(k) for k in RUN_FIELDS}
    machine = summary.get("machine") if isinstance(summary.get("machine"), dict) else {}
    row |= {"float_path": machine.get("float_path"), "cpu": machine.get("cpu")}
    code = summary.get("code") if isinstance(summary.get("code"), dict) else {}
    row |= {"code_id": code.get("code_id"), "commit": (code.get("commit") or "")[:12] or None, "dirty": code.get("dirty")}
    if isinstance(row["overrides"], list):  # python -m fedbench <overrides> reproduces the run
        row["overrides"] = shlex.join(str(o) for o in row["overrides"])
    engines = row["engines"] if row["engines"] is not None else summary.get("engine")  # (older runs: "a+b")
    row["engines"] = "+".join(engines) if isinstance(engines, list) else engines
    for when in ("final", "best"):
        row |= {f"{when}_{h}": summary.get(f"{when}_{h}", math.nan) for h in HEADLINE}
    sent = [v for k in ("bytes_up", "bytes_down") if isinstance(v := summary.get(k), (int, float))]
    row["bytes_total"] = sum(sent) if sent else None
    for key in ("dataset", "partition", "method"):
        if row[key] is None and isinstance(config.get(key), dict):
            row[key] = config[key].get("name")
    for key in ("seed", "num_clients", "rounds"):
        if row[key] is None:
            row[key] = config.get(key)
    return row, flatten(config)


def _label(items: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in items.items())


# Config keys a method's requirements may change (FedBN needs BatchNorm layers: model.bn=true), which
# therefore belong to the method's configuration rather than to the setting it is compared on.
METHOD_REQUIREMENT_KEYS = ("model.bn",)


def configuration_key(key: str) -> bool:
    """True for a flat config key that belongs to the method's configuration (its hyperparameters, the
    optimizer it trains with, a model switch it requires), not to the setting."""
    return key.startswith("method.") or key in OPTIMIZER_KEYS or key in METHOD_REQUIREMENT_KEYS


def method_label(method: str, flat: dict) -> str:
    """The method's name, or `<name>+bn` for a method run on a BatchNorm model it does not need (FedAvg
    on FedBN's model: the control that tells FedBN's gain from BatchNorm's)."""
    if flat.get("model.bn") is not True:
        return method
    import methods

    needs = method in methods.available() and getattr(methods.get(method), "needs_batchnorm", False)
    return method if needs else f"{method}+bn"


def assign_groups(rows: list[dict], flats: list[dict]) -> pd.DataFrame:
    """Add setting_key/setting (label), variant (method label) and the method's differing
    configuration keys as columns; return the run frame."""
    for row, flat in zip(rows, flats):
        if row.get("method") is not None:
            row["method"] = method_label(str(row["method"]), flat)
    settings = [setting_of(f) for f in flats]
    keys = [setting_key(f) for f in flats]
    all_keys = sorted({k for s in settings for k in s})
    varying = [k for k in all_keys if len({json.dumps(s.get(k), default=str) for s in settings}) > 1]
    presets: dict[str, set] = {}
    for row, key in zip(rows, keys):
        presets.setdefault(key, set()).add(preset_of(row.get("overrides")))
    names = {}
    for row, s, key in zip(rows, settings, keys):
        for k, v in s.items():   # the setting's parameters as columns: the partition's, and any that vary
            if (k.startswith("partition.") and k != "partition.name") or (k in varying and v is not None):
                row[k] = v
        if key not in names:   # fixed by the setting itself (report.labels), whatever else is in the directory
            preset = next(iter(presets[key])) if len(presets[key]) == 1 else None
            names[key] = setting_names(s, preset, key)
        row["setting"], row["setting_detail"], row["setting_stem"] = names[key]
        row["setting_key"] = key
    for method in {r["method"] for r in rows}:
        idx = [i for i, r in enumerate(rows) if r["method"] == method]
        hps = [{k: v for k, v in flats[i].items() if configuration_key(k) and k != "method.name"} for i in idx]
        vary = sorted({k for h in hps for k in h if len({json.dumps(x.get(k), default=str) for x in hps}) > 1},
                      key=lambda k: (k.startswith("method."), k))  # optimizer keys first
        for i, h in zip(idx, hps):
            label = {k.removeprefix("method."): h.get(k) for k in vary}
            rows[i]["variant"] = f"{method}({_label(label)})" if vary else str(method)
            rows[i] |= {k: h.get(k) for k in vary}
    frame = pd.DataFrame(rows)
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    return frame


def preset_of(overrides) -> str | None:
    """The `experiment=<preset>` a run was started with (from its overrides), or None."""
    found = [o.partition("=")[2] for o in str(overrides or "").split() if o.startswith("experiment=")]
    return found[-1] if found else None


def parse_filters(filters: list[str]) -> list[tuple[str, list[str]]]:
    """'key=v1,v2' -> ('key', ['v1', 'v2']); a malformed filter is a ReportError."""
    out = []
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep or not key or not value:
            raise ReportError(f"--filter {f!r} is not key=value (e.g. method=fedavg or partition.alpha=0.1)")
        out.append((key.strip(), [v.strip() for v in value.split(",")]))
    return out


def matches(value, wanted: list[str]) -> bool:
    """True when `value` (a summary field or config value) equals one of the `wanted` texts, as text or
    as a number (0.1 matches '0.1' and '1e-1')."""
    for w in wanted:
        if str(value) == w:
            return True
        try:
            if value is not None and not isinstance(value, str) and float(value) == float(w):
                return True
        except (TypeError, ValueError):
            pass
    return False


def is_probe(flat: dict) -> bool:
    """A stability probe (init_jitter > 0, fedbench.tune): a rerun of a selected configuration with a
    rounding-size nudge, never a configuration of its own."""
    try:
        return float(flat.get("init_jitter") or 0.0) != 0.0
    except (TypeError, ValueError):
        return False


def collect(results_dir: Path, filters: list[str] = (), probes: bool = False, only=None) -> pd.DataFrame:
    """All runs under results_dir as a frame (one row per run directory), filters applied; the stability
    probes apart (probes=True: only them, an empty frame when there are none); `only`: just these run
    directories (a sweep's)."""
    results_dir = Path(results_dir)
    if not (results_dir / "runs").is_dir():
        raise ReportError(f"no runs found: {results_dir / 'runs'} does not exist "
                          f"(run `python -m fedbench results_dir={results_dir}` first)")
    dirs = find_run_dirs(results_dir)
    if only is not None:
        wanted = {Path(p).resolve() for p in only}
        dirs = [d for d in dirs if d.resolve() in wanted]
    if not dirs:
        raise ReportError(f"no runs found under {results_dir / 'runs'} (no summary.json or config.yaml)")
    loaded = [(r, f) for r, f in (load_run(d, results_dir) for d in dirs) if is_probe(f) == probes]
    if probes and not loaded:
        return pd.DataFrame(columns=["run_dir", "overrides", "status", "seed", "final_acc", "best_acc"])
    rows, flats = [r for r, _ in loaded], [f for _, f in loaded]
    keep = [True] * len(rows)
    for key, wanted in parse_filters(list(filters)):
        known = [key in r or key in f for r, f in zip(rows, flats)]
        if not any(known):
            raise ReportError(f"--filter key {key!r} is neither a summary field nor a config key "
                              f"(e.g. method, seed, dataset.name, partition.alpha, lr)")
        for i, (r, f) in enumerate(zip(rows, flats)):
            value = r.get(key, f.get(key))
            keep[i] = keep[i] and matches(value, wanted)
    rows = [r for r, k in zip(rows, keep) if k]
    flats = [f for f, k in zip(flats, keep) if k]
    if not rows and probes:
        return pd.DataFrame(columns=["run_dir", "overrides", "status", "seed", "final_acc", "best_acc"])
    if not rows:
        raise ReportError(f"no runs left after filters {' '.join(filters)} ({len(dirs)} runs before)")
    return assign_groups(rows, flats)
