"""A selection among the configurations a screening stage carried (fedbench.tune --screen R --carry N)
is stated against the grid that was screened, not against the few carried: the configurations tried
(the screened ones; `carried` keeps how many reached the full rounds), the chosen value of every
searched key (the carried ones may all share an lr, which then names no column of the final runs),
and the keys it takes at an end of the screened grid (`grid_edge`), with the search's facts restated the
same way (extension_trials, unexplored_edge; tuning_rounds adds the screening's rounds)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def searched(overrides) -> frozenset:
    """The overrides that set a configuration key (collect.configuration_key: lr, method.<key>, ...) of a
    run: what a screened configuration and the full-round run carried from it share."""
    from fedbench.report.collect import configuration_key

    return frozenset(o for o in str(overrides or "").split() if configuration_key(o.partition("=")[0]))


def unscreened(setting: str) -> str:
    """A setting's name without its `rounds=` key: a screened setting ('fmnist_skew rounds=15') and the
    full-round one its carried configurations ran in ('fmnist_skew') differ in nothing else."""
    return " ".join(t for t in str(setting).split(" ") if not t.startswith("rounds="))


def screened_rankings(screen_dir: Path, metric: str) -> dict:
    """{(setting without its rounds, method): (the screening's Ranking, its runs)} (empty without
    screened runs)."""
    from fedbench.report.collect import collect
    from fedbench.report.select import rankings

    if not (Path(screen_dir) / "runs").is_dir():
        return {}
    return {(unscreened(group["setting"].iloc[0]), method): (rank, group)
            for (_, method), (rank, group) in rankings(collect(screen_dir), metric).items()}


def against_screening(selected: pd.DataFrame, picked: pd.DataFrame, screen_dir: Path, metric: str, lr=None
                      ) -> pd.DataFrame:
    """`selected` restated against the screened grids (every searched key a column of it). A selection
    whose runs match no screened configuration (a grid run at full rounds) is left as it is."""
    from fedbench.report.select import grid_edges
    from fedbench.report.stability import search_facts

    ranks = screened_rankings(screen_dir, metric)
    selected = selected.copy()
    for i, row in selected.iterrows():
        rank, group = ranks.get((unscreened(row["setting"]), row["method"]), (None, None))
        mine = picked[(picked["setting"] == row["setting"]) & (picked["method"] == row["method"])]["overrides"].dropna()
        if rank is None or not len(mine):
            continue
        mine = searched(mine.iloc[0])
        match = [v for v, first in rank.values.items() if searched(first.get("overrides")) == mine]
        if len(match) != 1:
            continue
        config = rank.values[match[0]]
        grid = {k: values for k, values in rank.grid.items() if pd.notna(config.get(k))}
        for k in grid:
            selected.loc[i, k] = config[k]
        selected.loc[i, "carried"] = row["configs_tried"]
        selected.loc[i, "configs_tried"] = len(rank.values)
        selected.loc[i, "grid_edge"] = grid_edges(config, grid)
        facts = search_facts(row["method"], rank.values, match[0], grid, group, rank.common, lr)
        facts["tuning_rounds"] += int(row.get("tuning_rounds") or 0)   # + the carried runs' full rounds
        for k, v in facts.items():
            selected.loc[i, k] = v
    return selected
