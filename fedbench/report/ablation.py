"""The ablation (fedbench.publish): a plot with one bar per variant (mean final accuracy over seeds,
error bar = sample std), grouped by the factor it changes, the base configuration as a dashed line;
and each variant tested against the base, paired over seeds (significance.paired_difference, Holm
over the variants). A variant changes one factor of the base ({name: (config key, values)}), or
several at once (`crossed`: {label: {key: value}}, e.g. the global backbone at lam = 0: the control
that tells a distillation that helps the shared backbone from one that only pulls the local one back)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fedbench.report.collect import matches
from fedbench.report.plots import _figure, save


def variants(factors: dict[str, tuple[str, list[str]]], crossed: dict[str, dict[str, str]] | None = None
             ) -> list[tuple[str, str, dict[str, str]]]:
    """(group, label, changes to the base) of every variant: each factor's values, then the crossed ones."""
    out = [(name, f"{name}={value}", {key: value}) for name, (key, values) in factors.items() for value in values]
    return out + [("crossed", label, dict(changes)) for label, changes in (crossed or {}).items()]


def at(runs: pd.DataFrame, base: dict[str, str], changes: dict[str, str], metric: str = "final_acc") -> pd.Series:
    """Accuracy in % of the runs at `base` with `changes`, indexed by seed."""
    keep = np.ones(len(runs), dtype=bool)
    for k, v in {**base, **changes}.items():
        if k in runs:
            keep &= runs[k].map(lambda x, v=v: matches(x, [v])).to_numpy()
    chosen = runs[keep].drop_duplicates("seed")
    return pd.Series(100 * chosen[metric].to_numpy(), index=chosen["seed"].to_numpy())


def complete_runs(summary_csv: Path) -> pd.DataFrame:
    runs = pd.read_csv(summary_csv)
    return runs[runs["status"] == "complete"]


def plot_ablation(summary_csv: Path, base: dict[str, str], factors: dict[str, tuple[str, list[str]]],
                  path: Path, metric: str = "final_acc", crossed: dict[str, dict[str, str]] | None = None) -> Path:
    """Bars for every variant (`variants`), each the runs at `base` with its changes; complete runs only."""
    runs = complete_runs(summary_csv)
    labels, means, stds, colors = [], [], [], []
    palette = dict(zip([*factors, "crossed"], [f"C{i}" for i in range(10)]))
    for group, label, changes in variants(factors, crossed):
        acc = at(runs, base, changes, metric)
        labels.append(label)
        means.append(acc.mean() if len(acc) else np.nan)
        stds.append(acc.std() if len(acc) > 1 else 0.0)
        colors.append(palette[group])
    fig, ax = _figure(f"FedBSD ablation ({runs['seed'].nunique()} seeds, mean ± std)", "", f"{metric.replace('_', ' ')} (%)")
    x = np.arange(len(labels))
    ax.bar(x, means, yerr=stds, color=colors, capsize=3)
    base_acc = at(runs, base, {}, metric)
    if len(base_acc):
        ax.axhline(base_acc.mean(), color="k", linestyle="--", linewidth=1, label="selected configuration")
        ax.legend(loc="best", fontsize=8)
    ax.set_xticks(x, labels, rotation=35, ha="right")
    finite = [m for m in means if np.isfinite(m)]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 10), min(100.0, max(finite) + 5))
    return save(fig, Path(path))


def ablation_tests(summary_csv: Path, base: dict[str, str], factors: dict[str, tuple[str, list[str]]],
                   metric: str = "final_acc", crossed: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """Every variant against the base configuration, paired over seeds (two-sided t-test, Holm over the
    variants): variant, n, mean, std, diff (points) with its 95% interval, p, p_holm, verdict."""
    from fedbench.report.differences import BETTER, NONE, WORSE
    from fedbench.report.significance import ALPHA, holm, paired_difference

    runs = complete_runs(summary_csv)
    reference = at(runs, base, {}, metric)
    rows = []
    for _, label, changes in variants(factors, crossed):
        if all(str(base.get(k, "")) == v for k, v in changes.items()):
            continue   # the base itself
        acc = at(runs, base, changes, metric)
        d = paired_difference(acc, reference)
        rows.append({"variant": label, "n": d.n, "mean": acc.mean(), "std": acc.std(),
                     "diff": d.mean, "low": d.low, "high": d.high, "p": d.p})
    out = pd.DataFrame(rows, columns=["variant", "n", "mean", "std", "diff", "low", "high", "p"])
    out["p_holm"] = holm(list(out["p"]), ALPHA)
    out["verdict"] = [NONE if p >= ALPHA else (BETTER if d > 0 else WORSE) for p, d in zip(out["p_holm"], out["diff"])]
    base_row = {"variant": "selected (base)", "n": len(reference), "mean": reference.mean(), "std": reference.std()}
    return pd.concat([pd.DataFrame([base_row]), out], ignore_index=True)


def crossed_effects(summary_csv: Path, base: dict[str, str], crossed: dict[str, dict[str, str]],
                    metric: str = "final_acc") -> pd.DataFrame:
    """For each crossed variant of two keys {condition: c, treatment: t} (in that order), the 2x2 around
    the base: the treatment's effect (base value - t, in points, paired over seeds) at the base's
    condition and at c, and their difference (at c - at the base's; the interaction), each with its 95%
    interval, Holm over the rows of the variant. For eval_backbone=global, lam=0: the distillation's
    effect seen through the client's own backbone and through the shared one."""
    from fedbench.report.differences import BETTER, NONE, WORSE
    from fedbench.report.significance import ALPHA, holm, paired_difference

    runs, rows = complete_runs(summary_csv), []
    for label, changes in crossed.items():
        if len(changes) != 2:
            continue
        (cond, c), (treat, t) = changes.items()
        effects = {}
        for level in (base.get(cond, ""), c):
            with_base = at(runs, base, {cond: level}, metric)
            without = at(runs, base, {cond: level, treat: t}, metric)
            effects[level] = with_base - without   # seed-aligned
            rows.append({"crossed": label, "at": f"{cond}={level}", "with": with_base.mean(), "without": without.mean(),
                         "d": paired_difference(with_base, without)})
        rows.append({"crossed": label, "at": f"{cond}={c} - {cond}={base.get(cond, '')} (interaction)",
                     "with": np.nan, "without": np.nan,
                     "d": paired_difference(effects[c], effects[base.get(cond, "")])})
    out = pd.DataFrame([{"crossed": r["crossed"], "at": r["at"], "n": r["d"].n, "with": r["with"],
                         "without": r["without"], "diff": r["d"].mean, "low": r["d"].low, "high": r["d"].high,
                         "p": r["d"].p} for r in rows],
                       columns=["crossed", "at", "n", "with", "without", "diff", "low", "high", "p"])
    out["p_holm"] = np.concatenate([holm(list(g["p"]), ALPHA) for _, g in out.groupby("crossed", sort=False)]) \
        if len(out) else []
    out["verdict"] = [NONE if p >= ALPHA else (BETTER if d > 0 else WORSE) for p, d in zip(out["p_holm"], out["diff"])]
    return out


def crossed_lines(found: pd.DataFrame, base: dict[str, str], crossed: dict[str, dict[str, str]]) -> list[str]:
    """Markdown sections of `crossed_effects`, one per crossed variant."""
    lines = []
    for label, changes in crossed.items():
        rows = found[found["crossed"] == label]
        if not len(rows):
            continue
        (cond, _), (treat, t) = changes.items()
        effect = f"{treat}={base.get(treat, '')} − {treat}={t}"
        lines += ["", f"## The crossed control ({label}): {effect} at each {cond}", "",
                  f"The effect of {treat} = {base.get(treat, '')} against {t}, paired over seeds, seen with each "
                  f"{cond}, and the difference between the two effects (interaction); Holm over these rows.", "",
                  f"| at | seeds | with {treat}={base.get(treat, '')} | with {treat}={t} | effect | p (Holm) | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in rows.iterrows():
            accs = ["—", "—"] if np.isnan(r["with"]) else [f"{r['with']:.2f}", f"{r['without']:.2f}"]
            interval = "" if np.isnan(r["low"]) else f" [{r['low']:+.2f}, {r['high']:+.2f}]"
            lines.append(f"| {r['at']} | {r['n']} | {accs[0]} | {accs[1]} | {r['diff']:+.2f}{interval} | "
                         f"{r['p_holm']:.2g} | {r['verdict']} |")
    return lines


def write_ablation_tests(summary_csv: Path, base: dict[str, str], factors: dict[str, tuple[str, list[str]]],
                         path: Path, metric: str = "final_acc", crossed: dict[str, dict[str, str]] | None = None) -> Path:
    """The ablation's tested differences as Markdown (one row per variant, the base first)."""
    from fedbench.files import atomic_write
    from fedbench.report.significance import ALPHA

    found = ablation_tests(summary_csv, base, factors, metric, crossed)
    lines = ["# FedBSD ablation: each variant against the selected configuration", "",
             "Base: " + ", ".join(f"{k}={v}" for k, v in base.items()) + f". {metric} in %, mean ± std over seeds; "
             f"difference = variant - base, mean of the paired differences [95% t-interval]; two-sided paired "
             f"t-test Holm-corrected over the variants (alpha = {ALPHA}).", "",
             "| variant | seeds | acc | difference | p (Holm) | verdict |", "|---|---|---|---|---|---|"]
    for _, r in found.iterrows():
        if r["variant"] == "selected (base)":
            lines.append(f"| {r['variant']} | {r['n']} | {r['mean']:.2f} ± {r['std']:.2f} | — | — | — |")
            continue
        interval = "" if np.isnan(r["low"]) else f" [{r['low']:+.2f}, {r['high']:+.2f}]"
        lines.append(f"| {r['variant']} | {r['n']} | {r['mean']:.2f} ± {r['std']:.2f} | {r['diff']:+.2f}{interval} | "
                     f"{r['p_holm']:.2g} | {r['verdict']} |")
    lines += crossed_lines(crossed_effects(summary_csv, base, crossed or {}, metric), base, crossed or {})
    atomic_write(path, "\n".join(lines) + "\n")
    return Path(path)
