"""Plots (matplotlib, Agg, no pyplot state): per setting, accuracy vs round and accuracy vs
communicated bytes (one line per method, band = std over seeds), accuracy vs compute (one point per
method), the per-client accuracy distribution per method (box plot, clients pooled over seeds), and
copies of the partition heatmaps.
Only usable runs are drawn (aggregate.good_runs); files are written atomically.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib import colormaps
from matplotlib.figure import Figure

from fedbench.files import atomic_open
from fedbench.rundir.layout import CLIENTS, METRICS

TAB20 = colormaps["tab20"]

PREFIXES = ("cd_", "curves_", "bytes_", "clients_", "partition_", "compute_", "newcomers_")


def stem(run) -> str:
    """A setting's short, stable file-name stem (report.labels; older frames: from its label)."""
    if isinstance(run.get("setting_stem"), str):
        return run["setting_stem"]
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", str(run["setting"])).strip("_")[:40] + f"_{str(run['setting_key'])[:6]}"


def save(fig: Figure, path: Path) -> Path:
    """Render into files.atomic_open: readers never see half a PNG, and it is readable by the group."""
    FigureCanvasAgg(fig)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
    return path


def _read(results_dir: Path, run_dir: str, name: str) -> pd.DataFrame | None:
    """The CSV file, or None when it cannot be read (collect has already put such runs aside)."""
    try:
        return pd.read_csv(results_dir / run_dir / name)
    except (OSError, ValueError):  # ValueError: also EmptyDataError, ParserError, UnicodeDecodeError
        return None


def seed_curves(results_dir: Path, runs: pd.DataFrame, y: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Mean and std over seeds of metrics.csv column `y` per round, and the mean cumulative MB sent."""
    frames = []
    for seed, run_dir in zip(runs["seed"], runs["run_dir"]):
        m = _read(results_dir, run_dir, METRICS)
        if m is not None and {y, "bytes_up", "bytes_down"} <= set(m.columns):
            frames.append(m.assign(seed=seed, mb=(m["bytes_up"] + m["bytes_down"]) / 1e6))
    if not frames:
        empty = pd.Series(dtype=float)
        return empty, empty, empty
    allm = pd.concat(frames)
    grouped = allm.groupby("round")
    return 100 * grouped[y].mean(), (100 * grouped[y].std()).fillna(0.0), grouped["mb"].mean()


def _figure(title: str, xlabel: str, ylabel: str):
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_setting_lines(results_dir: Path, ok: pd.DataFrame, out: Path, name: str) -> list[Path]:
    """curves_<setting>.png (accuracy vs round) and bytes_<setting>.png (accuracy vs MB sent)."""
    setting = ok["setting"].iloc[0]
    fig_r, ax_r = _figure(setting, "round", "mean client test accuracy (%)")
    fig_b, ax_b = _figure(setting, "communicated MB (up + down, cumulative)", "mean client test accuracy (%)")
    for i, (variant, runs) in enumerate(ok.groupby("variant")):
        mean, std, mb = seed_curves(results_dir, runs, "test_acc")
        if mean.empty:
            continue
        color = TAB20(i % 20)  # 20 distinct colours, a line style per ten (up to 60 methods stay apart)
        style = ("-", "--", ":")[(i // 10) % 3]
        label = f"{variant} (n={len(runs)})"
        for ax, x in ((ax_r, mean.index.to_numpy()), (ax_b, mb.to_numpy())):
            ax.plot(x, mean.to_numpy(), color=color, linestyle=style, marker="o", markersize=3, label=label)
            ax.fill_between(x, (mean - std).to_numpy(), (mean + std).to_numpy(), color=color, alpha=0.2)
            if len(x) == 1:  # one evaluation: a band has no width, show the spread as an error bar
                ax.errorbar(x, mean.to_numpy(), yerr=std.to_numpy(), color=color, capsize=4)
    for ax in (ax_r, ax_b):
        ax.legend(fontsize=7, ncol=2 if ok["variant"].nunique() > 8 else 1)
    return [save(fig_r, out / f"curves_{name}.png"), save(fig_b, out / f"bytes_{name}.png")]


def plot_clients(results_dir: Path, ok: pd.DataFrame, out: Path, name: str) -> list[Path]:
    """clients_<setting>.png: per-client final test accuracy per method, clients of all seeds pooled."""
    data, labels = [], []
    for variant, runs in ok.groupby("variant"):
        accs = [c["test_acc"].dropna().to_numpy() for d in runs["run_dir"]
                if (c := _read(results_dir, d, CLIENTS)) is not None and "test_acc" in c]
        if accs:
            data.append(100 * np.concatenate(accs))
            labels.append(f"{variant}\n({len(accs)} seeds)")
    if not data:
        return []
    fig, ax = _figure(ok["setting"].iloc[0], "method", "client test accuracy at the last evaluation (%)")
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7, rotation=45 if len(labels) > 6 else 0,
                  ha="right" if len(labels) > 6 else "center")
    return [save(fig, out / f"clients_{name}.png")]


def plot_compute(ok: pd.DataFrame, out: Path, name: str, y: str = "final_acc") -> list[Path]:
    """compute_<setting>.png: each method's accuracy against what it computed (compute_flops: local
    training, the forward passes it needs, the work before evaluation; log scale), mean ± std over seeds."""
    if "compute_flops" not in ok.columns:
        return []
    frame = ok.assign(flops=pd.to_numeric(ok["compute_flops"], errors="coerce"), acc=100 * ok[y])
    cells = frame.groupby("variant").agg(flops=("flops", "mean"), flops_std=("flops", "std"), acc=("acc", "mean"),
                                         acc_std=("acc", "std")).dropna(subset=["flops"])
    cells = cells[cells["flops"] > 0]
    if not len(cells):
        return []
    fig, ax = _figure(ok["setting"].iloc[0], "compute, FLOPs (training + before evaluation; log scale)",
                      f"{y.replace('_', ' ')} (%)")
    ax.set_xscale("log")
    for i, (variant, c) in enumerate(cells.iterrows()):
        ax.errorbar(c["flops"], c["acc"], xerr=np.nan_to_num(c["flops_std"]), yerr=np.nan_to_num(c["acc_std"]),
                    color=TAB20(i % 20), marker="os^"[(i // 10) % 3], capsize=3, label=variant)
        ax.annotate(variant, (c["flops"], c["acc"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.legend(fontsize=7, ncol=2 if len(cells) > 8 else 1)
    low, high = (cells["flops"] - cells["flops_std"].fillna(0)).clip(lower=cells["flops"].min() / 2).min(), \
        (cells["flops"] + cells["flops_std"].fillna(0)).max()
    ax.set_xlim(low / 1.5, high * 1.5)   # set, not autoscaled: one point would collapse a log axis
    acc_low, acc_high = (cells["acc"] - cells["acc_std"].fillna(0)).min(), (cells["acc"] + cells["acc_std"].fillna(0)).max()
    pad = max(1.0, 0.05 * (acc_high - acc_low))
    ax.set_ylim(acc_low - pad, acc_high + pad)
    return [save(fig, out / f"compute_{name}.png")]


def copy_heatmaps(runs: pd.DataFrame, out: Path) -> list[Path]:
    """partition_<setting>_seed<k>.png: each distinct partition's heatmap.png from its cache entry."""
    written, seen = [], set()
    for _, r in runs.iterrows():
        cache = r.get("partition_cache")
        if not isinstance(cache, str) or cache in seen or not (Path(cache) / "heatmap.png").is_file():
            continue
        seen.add(cache)
        dest = out / f"partition_{stem(r)}_seed{r['seed']}.png"
        with atomic_open(dest, "wb") as f:
            f.write((Path(cache) / "heatmap.png").read_bytes())
        written.append(dest)
    return written


def clear_old(out: Path) -> None:
    """Remove plots an earlier report wrote (settings may have gone), never other files."""
    for p in out.glob("*.png"):
        if p.name.startswith(PREFIXES):
            p.unlink(missing_ok=True)


def write_plots(results_dir: Path, runs: pd.DataFrame, ok: pd.DataFrame, out: Path) -> list[Path]:
    """All plots for the usable runs `ok` (heatmaps for every run that has a partition cache)."""
    out.mkdir(parents=True, exist_ok=True)
    clear_old(out)
    written = []
    for key, group in ok.groupby("setting_key"):
        name = stem(group.iloc[0])
        written += plot_setting_lines(results_dir, group, out, name)
        written += plot_clients(results_dir, group, out, name)
        written += plot_compute(group, out, name)
    return written + copy_heatmaps(runs, out)
