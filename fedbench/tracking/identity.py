"""What every tracker is told about a run: its name, group, tags and flat parameters, and which
summary numbers are its headline.

  setting  <dataset>/<partition tag>/N<clients>, e.g. digits/dirichlet_alpha0.1_min_samples10/N20
  group    <setting>/<setting key>: the key is summary.csv's setting_key (everything but the method
           and the seed, fedbench.report.collect), so runs that differ only in e.g. lr never share a group
  name     <method>/<setting>/seed<seed>
  params   the resolved config, flattened ("partition.alpha", "method.lam", lists as JSON text),
           without hydra's and the logger's own keys, plus config_hash (the run directory's hash)
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# summary.json numbers every tracker gets at the end (those present), besides the status.
HEADLINE = ("final_acc", "final_acc_weighted", "final_acc_std", "final_acc_bottom10",
            "best_acc", "best_acc_weighted", "best_acc_std", "best_acc_bottom10", "best_round",
            "rounds_done", "diverged_round", "coverage", "wall_time_s")
# summary.json facts about how the numbers were computed (tags / text, not metrics).
RUN_FACTS = ("status", "engine", "device", "threads", "torch", "resumed_from_round", "error")


@dataclass(frozen=True)
class RunIdentity:
    name: str
    group: str
    setting: str
    method: str
    seed: int
    run_dir: Path
    results_dir: Path
    tags: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def identify(cfg: DictConfig, run_dir: Path) -> RunIdentity:
    from fedbench.report.collect import flatten, setting_key
    from fedbench.rundir import config_hash, partition_tag, scientific_config

    setting = f"{cfg.dataset.name}/{partition_tag(cfg.partition)}/N{cfg.num_clients}"
    group = f"{setting}/{setting_key(flatten(scientific_config(cfg)))}"
    full = OmegaConf.to_container(cfg, resolve=True)
    for own in ("hydra", "logger"):
        full.pop(own, None)
    params = flatten(full) | {"config_hash": config_hash(cfg)}
    tags = {"method": cfg.method.name, "dataset": cfg.dataset.name, "partition": cfg.partition.name,
            "seed": str(cfg.seed), "setting": setting, "group": group, "config_hash": params["config_hash"],
            "run_dir": str(run_dir)}
    return RunIdentity(name=f"{cfg.method.name}/{setting}/seed{cfg.seed}", group=group, setting=setting,
                       method=str(cfg.method.name), seed=int(cfg.seed), run_dir=Path(run_dir),
                       results_dir=Path(str(cfg.results_dir)).expanduser().absolute(), tags=tags, params=params)


def headline(summary: dict) -> dict[str, float]:
    """The summary's headline numbers (those present), as floats."""
    return {k: float(summary[k]) for k in HEADLINE if isinstance(summary.get(k), numbers.Real)}


def facts(summary: dict) -> dict[str, str]:
    """Status and how the run was computed, as text; `error` always (empty once a resumed run
    completes, replacing the error of the segment that failed)."""
    return {k: str(summary[k]) for k in RUN_FACTS if summary.get(k) is not None} | {"error": summary.get("error") or ""}


def last_step(summary: dict, logged: int) -> int:
    """The step the summary is logged at: the last round done, else the last round logged."""
    return int(summary.get("diverged_round") or summary.get("rounds_done") or logged)


def metrics_of(row: dict) -> dict[str, float]:
    """A metrics.csv row's numbers by column name (the round is the step, not a metric)."""
    return {k: float(v) for k, v in row.items() if k != "round" and isinstance(v, numbers.Real)}
