"""The comparison a reader looks at first: methods x settings, each setting's mean ± std over seeds
beside its bottom-decile client accuracy, and the average rank across settings; plus the chosen
hyperparameters of a selection on validation (fedbench.report.select). Markdown and LaTeX."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fedbench.report.aggregate import aggregate
from fedbench.report.cost import cost_ratios
from fedbench.report.newcomers import newcomer_cells, with_newcomers
from fedbench.report.significance import SIGNIFICANCE_NOTE
from fedbench.report.tables import COST_NOTE, best_cells, by_dataset, cell_text, to_latex, to_markdown, with_costs
from fedbench.files import atomic_write


def ranks(agg: pd.DataFrame) -> pd.Series:
    """Average rank of each variant over the settings where it has a value: per setting, 1 = the
    highest mean accuracy (ties share the average rank)."""
    have = agg[agg["n"] > 0]
    per = have.assign(rank=have.groupby("setting_key")["mean"].rank(ascending=False, method="average"))
    return per.groupby("variant")["rank"].mean()


MARKS = {"tied": ("‡", "$^\\ddagger$"), "unstable": ("§", "$^\\S$"), "tuning": ("°", "$^\\circ$")}


def leaderboard(runs: pd.DataFrame, metric: str, style: str, marked: dict | None = None) -> pd.DataFrame:
    """Rows: variants; per setting a mean ± std column and a bottom-10% column, then what the method
    spends there (compute and bytes, x FedAvg's); then the average rank. `marked` {mark name: (setting,
    variant) cells}: ‡ tied (the tie rule chose), § unstable (a rounding-size change moves it by more
    than the tolerance), ° reported on its tuning seeds (there were no others)."""
    marked = marked or {}
    acc, low = aggregate(runs, metric, "acc"), aggregate(runs, metric, "acc_bottom10")
    best = best_cells(acc, runs, metric)
    pm = "$\\pm$" if style == "tex" else "±"
    cells = {}
    for (_, r), is_best, (_, b) in zip(acc.iterrows(), best, low.iterrows()):
        text = cell_text(r["mean"], r["std"], r["n"], r["expected"], pm)
        if style == "tex":
            text = text.replace("†", "$^\\dagger$").replace("—", "--")
        if is_best:
            text = f"\\textbf{{{text}}}" if style == "tex" else f"**{text}**"
        for name, cells_marked in marked.items():
            if (r["setting"], r["variant"]) in cells_marked:
                text += MARKS[name][1] if style == "tex" else f" {MARKS[name][0]}"
        cells[(r["variant"], r["setting"], "acc")] = text
        cells[(r["variant"], r["setting"], "bottom 10%")] = "—" if b["n"] == 0 else f"{100 * b['mean']:.2f}"
    variants = sorted({v for v, _, _ in cells})
    settings = sorted({s for _, s, _ in cells})
    columns = [f"{s} | {what}" for s in settings for what in ("acc", "bottom 10%")]
    table = pd.DataFrame([[cells.get((v, s, w), "") for s in settings for w in ("acc", "bottom 10%")]
                          for v in variants], index=variants, columns=columns)
    table = with_costs(table, cost_ratios(runs, metric), style, after=" | bottom 10%")
    table = with_newcomers(table, newcomer_cells(runs, metric), style)
    avg = ranks(acc)
    table["avg rank"] = [f"{avg[v]:.2f}" if v in avg and not math.isnan(avg[v]) else "" for v in variants]
    return table.sort_values("avg rank", key=lambda c: pd.to_numeric(c, errors="coerce"), kind="stable")


def note(metric: str) -> str:
    return (f"{metric} personalized accuracy in %, mean ± sample std over seeds, each method at its configuration "
            "selected on validation accuracy; bottom 10% = mean accuracy of the worst decile of clients (mean over "
            "seeds); " + COST_NOTE + "; avg rank = mean over settings of the method's rank by mean accuracy (1 = best); "
            + SIGNIFICANCE_NOTE + "; † (n/N) = only n of N seeds completed; ‡ = the configuration was chosen by the tie "
            "rule (several tied on validation; tables/selected_hparams.md); § = unstable: rerun with a rounding-size "
            "change (init_jitter) its final accuracy moved by more than the tolerance, so its numbers depend on the "
            "machine's float path (tables/selected.csv rounding_delta); ° = reported on the tuning seed (no reporting "
            "seeds: optimistic). Seeds: the tuning seed chooses, the reporting seeds (tables/selected.csv) are averaged.")


def legend(runs: pd.DataFrame) -> str:
    """' Settings: digits_skew = digits dirichlet(...) N=50 ...; ...' for the settings named by a preset
    (report.labels), else ''."""
    if "setting_detail" not in runs.columns:
        return ""
    pairs = runs[["setting", "setting_detail"]].dropna().drop_duplicates().sort_values("setting")
    pairs = pairs[pairs["setting"] != pairs["setting_detail"]]
    return (" Settings: " + "; ".join(f"{a} = {b}" for a, b in pairs.itertuples(index=False)) + ".") if len(pairs) else ""


def marked_cells(selected: pd.DataFrame) -> dict[str, set[tuple[str, str]]]:
    """(setting, method) of the selections the tie rule decided, of the unstable ones, and of those
    reported on their tuning seeds."""
    if not len(selected) or "tied" not in selected:
        return {}
    cells = lambda mask: set(zip(selected.loc[mask, "setting"], selected.loc[mask, "method"]))  # noqa: E731
    column = lambda name, default: selected[name] if name in selected else pd.Series(default, selected.index)  # noqa: E731
    return {"tied": cells(selected["tied"].fillna(1) > 1),
            "unstable": cells(column("unstable", False).fillna(False).astype(bool)),
            "tuning": cells(column("reported_on", "").fillna("").astype(str).str.startswith("tuning"))}


def hyperparameter_table(selected: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows: methods; per setting the chosen values, e.g. `lr=0.05, method.lam=1`."""
    def chosen(r) -> str:
        vals = [f"{k}={r[k]:g}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys
                if k in r and pd.notna(r[k])]
        carried = f", {int(r['carried'])} carried" if pd.notna(r.get("carried")) else ""
        return ", ".join(vals) + f" ({int(r['configs_tried'])} tried{carried})"

    if not len(selected):
        return pd.DataFrame()
    return selected.assign(label=[chosen(r) for _, r in selected.iterrows()]).pivot(
        index="method", columns="setting", values="label").fillna("")


def write_leaderboard(runs: pd.DataFrame, selected: pd.DataFrame, keys: list[str], metric: str,
                      out_dir: Path) -> list[Path]:
    """tables/leaderboard_<metric>.{md,tex} and tables/selected_hparams.md; returns the paths."""
    out_dir, written = Path(out_dir), []
    title = f"{metric} personalized accuracy, configurations selected on validation"
    for style, render in (("md", to_markdown), ("tex", to_latex)):   # one table per dataset
        path = out_dir / f"leaderboard_{metric}.{style}"
        atomic_write(path, "\n".join(render(leaderboard(part, metric, style, marked_cells(selected)),
                                            f"{title}: {dataset}" if dataset else title, note(metric) + legend(part))
                                     for dataset, part in by_dataset(runs)))
        written.append(path)
    path = out_dir / "selected_hparams.md"
    hp = hyperparameter_table(selected, keys)
    atomic_write(path, to_markdown(hp, "Configurations selected on validation accuracy",
                                   "Per setting, the chosen values of each method's searched keys and how many "
                                   "configurations were tried (the same budget for every method; after a screening stage, the "
                                   "configurations screened and how many of them were carried to the full rounds, "
                                   "among which the selection chose).")
                 + selection_notes(selected))
    written.append(path)
    return written


def selection_notes(selected: pd.DataFrame) -> str:
    """Markdown: how many selections were ties (and the rule that broke them), and every selection
    at an end of its grid."""
    if not len(selected) or "tied" not in selected:
        return ""
    ties = selected[selected["tied"].fillna(1) > 1]
    edges = selected[selected["grid_edge"].fillna("").astype(str) != ""]
    lines = ["", "## Ties", "",
             f"{len(ties)} of {len(selected)} selections were ties on validation accuracy, broken by the "
             "configuration nearest the grid's middle, then label order (fedbench.report.select)."]
    lines += [f"- {r['setting']} | {r['method']}: {int(r['tied'])} configurations tied" for _, r in ties.iterrows()]
    lines += ["", "## Selections at an edge of the values tried", "",
              f"{len(edges)} of {len(selected)} selections take a searched key at the smallest or largest value "
              "tried; fedbench.tune extends such a key until the choice is interior or the key's declared range "
              "ends (e.g. kappa = 1 of kappa in (0, 1]):"]
    lines += [f"- {r['setting']} | {r['method']}: {r['grid_edge']}" for _, r in edges.iterrows()]
    if "unexplored_edge" in selected:
        open_edges = selected[selected["unexplored_edge"].fillna("").astype(str) != ""]
        lines += ["", "## Selections at an unexplored edge", "",
                  f"{len(open_edges)} of {len(selected)} selections sit at an edge that a further value could still "
                  "have moved (the budget ran out, or the key was not searched by fedbench.tune):"]
        lines += [f"- {r['setting']} | {r['method']}: {r['unexplored_edge']}" for _, r in open_edges.iterrows()]
    return "\n".join(lines + budget_lines(selected)) + "\n"


def budget_lines(selected: pd.DataFrame) -> list[str]:
    """Markdown: per method, the configurations tried, the extension trials among them and the rounds
    trained on the tuning seeds (summed over settings), and the largest ratio between two methods."""
    if "tuning_rounds" not in selected or not len(selected):
        return []
    per = selected.groupby("method")[["configs_tried", "extension_trials", "tuning_rounds"]].sum()
    lines = ["", "## What each method's search spent", "",
             "| method | configurations tried | of which extensions | rounds trained (tuning seeds) |", "|---|---|---|---|"]
    lines += [f"| {m} | {int(r.configs_tried)} | {int(r.extension_trials)} | {int(r.tuning_rounds)} |"
              for m, r in per.iterrows()]
    trials = per["configs_tried"][per["configs_tried"] > 0]
    if len(trials):
        lines += ["", f"Largest to smallest: {trials.max() / trials.min():.2f}x the configurations, "
                      f"{per['tuning_rounds'].max() / max(per['tuning_rounds'].min(), 1):.2f}x the rounds "
                      "(fedbench.tune caps every method at twice the lr list; conf/tune.yaml)."]
    return lines
