"""A selection among carried configurations is stated against the screened grid (report.screened)."""
import pandas as pd

from fedbench.report import screened
from fedbench.report.select import config_columns, rank_configurations


def test_a_selection_among_carried_configurations_names_every_searched_key_and_the_screened_edges(monkeypatch):
    # screened: lr 0.1/0.3 x lam 1/10/100; the two carried share lr=0.1, so the final runs name only lam
    lrs, lams = [0.1, 0.1, 0.1, 0.3, 0.3, 0.3], [1.0, 10.0, 100.0] * 2
    group = pd.DataFrame({"variant": [f"fedbsd(lr={a}, lam={b})" for a, b in zip(lrs, lams)], "seed": 0,
                          "_score": [0.5, 0.8, 0.7, 0.0, 0.0, 0.0], "lr": lrs, "method.lam": lams,
                          "overrides": [f"method=fedbsd lr={a} method.lam={b} seed=0 rounds=25" for a, b in zip(lrs, lams)],
                          "rounds_done": 25, "diverged_round": [None, None, None, 3, 3, 3]})
    rank = rank_configurations(group, ["lr", "method.lam"])
    monkeypatch.setattr(screened, "screened_rankings", lambda screen_dir, metric: {("S", "fedbsd"): (rank, group)})
    selected = pd.DataFrame({"setting": ["S", "S"], "method": ["fedbsd", "fedavg"],
                             "variant": ["fedbsd(lam=10.0)", "fedavg(lr=0.3)"], "method.lam": [10.0, None],
                             "configs_tried": [2, 3], "grid_edge": ["method.lam=10 (largest of 2)", "lr=0.3 (largest of 3)"]})
    picked = pd.DataFrame({"setting": ["S", "S"], "method": ["fedbsd", "fedavg"],
                           "overrides": ["method=fedbsd lr=0.1 method.lam=10.0 seed=1 rounds=100", "method=fedavg lr=0.3"]})
    out = screened.against_screening(selected, picked, None, "final")
    bsd, avg = out.iloc[0], out.iloc[1]
    assert config_columns(out) == ["lr", "method.lam"] and bsd["lr"] == 0.1 and bsd["method.lam"] == 10.0
    assert bsd["configs_tried"] == 6 and bsd["carried"] == 2
    assert bsd["grid_edge"] == "lr=0.1 (smallest of 2)"          # lam=10 is the middle of 1/10/100
    # the search would have gone below lr 0.1: an unexplored edge
    assert bsd["unexplored_edge"] == "lr=0.1 (smallest)" and bsd["extension_trials"] == 3   # lr 0.3: off the lr list
    assert bsd["tuning_rounds"] == 3 * 25 + 3 * 3                # the screening's rounds (3 diverged at round 3)
    # a method tuned at full rounds (no screening of it) keeps its own statement
    assert avg["configs_tried"] == 3 and avg["grid_edge"] == "lr=0.3 (largest of 3)" and pd.isna(avg["carried"])
