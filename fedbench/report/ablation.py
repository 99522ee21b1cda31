"""The ablation plot: one bar per variant (mean final accuracy over seeds, error bar = sample std),
grouped by the factor it changes, the base configuration as a dashed line (fedbench.publish)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fedbench.report.collect import matches
from fedbench.report.plots import _figure, save


def plot_ablation(summary_csv: Path, base: dict[str, str], factors: dict[str, tuple[str, list[str]]],
                  path: Path, metric: str = "final_acc") -> Path:
    """Bars for every (factor, value) of `factors` ({name: (config key, values)}), each the runs at
    `base` except that key; complete runs only."""
    runs = pd.read_csv(summary_csv)
    runs = runs[runs["status"] == "complete"]
    labels, means, stds, colors = [], [], [], []
    palette = dict(zip(factors, ["C0", "C1", "C2", "C3", "C4", "C5"]))

    def at(key: str, value: str) -> pd.Series:
        keep = np.ones(len(runs), dtype=bool)
        for k, v in {**base, key: value}.items():
            if k in runs:
                keep &= runs[k].map(lambda x, v=v: matches(x, [v])).to_numpy()
        return 100 * runs.loc[keep, metric]

    for name, (key, values) in factors.items():
        for value in values:
            acc = at(key, value)
            labels.append(f"{name}={value}")
            means.append(acc.mean() if len(acc) else np.nan)
            stds.append(acc.std() if len(acc) > 1 else 0.0)
            colors.append(palette[name])
    fig, ax = _figure(f"FedBSD ablation ({runs['seed'].nunique()} seeds, mean ± std)", "", f"{metric.replace('_', ' ')} (%)")
    x = np.arange(len(labels))
    ax.bar(x, means, yerr=stds, color=colors, capsize=3)
    base_acc = at("method.lam", base.get("method.lam", ""))
    if len(base_acc):
        ax.axhline(base_acc.mean(), color="k", linestyle="--", linewidth=1, label="selected configuration")
        ax.legend(loc="best", fontsize=8)
    ax.set_xticks(x, labels, rotation=35, ha="right")
    finite = [m for m in means if np.isfinite(m)]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 10), min(100.0, max(finite) + 5))
    return save(fig, Path(path))
