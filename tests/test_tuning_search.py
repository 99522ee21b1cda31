"""The staged search (fedbench.tuning.search) on synthetic scores: every method starts with the same lr
list, a best at an edge is extended until interior (or the range or the budget ends), the own keys are
searched at the best lr, and the replay from the scores so far asks for the same trials every time."""
import math

import pytest

from fedbench.tuning.search import search
from fedbench.tuning.space import Key, Space, space_of, tune_settings

LRS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def space(*own, defaults=()):
    return Space("m", (Key("lr", LRS, "log", "(0, inf)"), *own), tuple(defaults))


def drive(sp, f, cap=16):
    """Run the search to its end on the score function f(config) (every trial scored when asked)."""
    scores = {}
    for _ in range(50):
        out = search(sp, lambda c: scores.get(c), cap)
        if not out.pending:
            return out, scores
        for c in out.pending:
            scores[c] = f(c)
    raise AssertionError("the search did not end")


def peaked(at_lr, at_key=None, key_index=1):
    """A score with one maximum at lr=at_lr (and key=at_key), falling off in log distance."""
    def f(c):
        s = -abs(math.log(c[0] / at_lr))
        if at_key is not None:
            s -= abs(math.log((c[key_index] + 1e-3) / (at_key + 1e-3)))
        return s
    return f


def test_every_method_starts_with_the_same_lr_list():
    for method in ("fedavg", "fedprox", "pfedme", "gpfl"):
        sp = space_of(method)
        first = search(sp, lambda c: None, tune_settings().max_trials)
        assert sorted(c[0] for c in first.pending) == list(tune_settings().lr)
        assert all(c[1:] == sp.defaults for c in first.pending)   # at the method's own defaults


def test_an_interior_best_needs_no_extension():
    out, scores = drive(space(), peaked(0.05))
    assert out.best == (0.05,) and len(scores) == len(LRS) and not out.capped


@pytest.mark.parametrize("peak, extra", [(4.0, [2.0, 4.0, 8.0]), (0.001, [0.0025, 0.00125, 0.000625])])
def test_a_best_at_an_edge_is_extended_until_interior(peak, extra):
    """The peak lies beyond the list: the search steps past the end (ratio 2 at both ends of the 1-2-5
    list) until the best is interior; the choice is then at its peak, not at the end of the list."""
    out, scores = drive(space(), peaked(peak))
    tried = sorted(c[0] for c in scores)
    assert set(tried) == set(LRS) | set(extra)
    best = out.best[0]
    assert tried[0] < best < tried[-1]
    assert abs(math.log(best / peak)) <= math.log(2.0) / 2 + 1e-9


def test_own_keys_are_searched_at_the_best_lr_then_the_lr_again():
    mu = Key("method.mu", (0.001, 0.01, 0.1, 1.0), "log", "[0, inf)")
    out, scores = drive(space(mu, defaults=(1.0,)), peaked(0.1, at_key=0.01))
    assert out.best == (0.1, 0.01)
    assert {c for c in scores if c[1] != 1.0 and c[0] == 0.1} == {(0.1, v) for v in (0.001, 0.01, 0.1)}
    assert {(0.05, 0.01), (0.2, 0.01)} <= set(scores)   # the lr's neighbours at the new mu
    assert len(scores) == 8 + 3 + 2


def test_a_declared_bound_stops_the_extension():
    alpha = Key("method.alpha", (0.25, 0.5, 0.75, 1.0), "linear", "[0, 1]")
    out, scores = drive(space(alpha, defaults=(0.5,)), lambda c: -abs(math.log(c[0] / 0.05)) + c[1])
    assert out.best[1] == 1.0 and max(c[1] for c in scores) == 1.0 and not out.capped  # no alpha > 1 tried


def test_the_budget_caps_every_method_at_twice_the_lr_list():
    lam = Key("method.lam", (0.1, 1.0, 10.0, 100.0), "log", "[0, inf)")
    out, scores = drive(space(lam, defaults=(1.0,)), lambda c: c[1], cap=2 * len(LRS))   # rises forever
    assert len(scores) == 2 * len(LRS) and out.capped


def test_diverged_trials_score_zero_and_lose():
    """lr >= 0.5 diverges (score 0): the best is interior at 0.2, not extended upwards."""
    out, scores = drive(space(), lambda c: 0.0 if c[0] >= 0.5 else 0.5 + c[0])
    assert out.best == (0.2,) and max(c[0] for c in scores) == 1.0


def test_the_replay_is_deterministic():
    mu = Key("method.mu", (0.001, 0.01, 0.1, 1.0), "log", "[0, inf)")
    sp = space(mu, defaults=(1.0,))
    _, scores = drive(sp, peaked(1.0, at_key=0.001))
    partial = dict(list(scores.items())[:9])
    first = search(sp, lambda c: partial.get(c), 16)
    assert first.pending == search(sp, lambda c: partial.get(c), 16).pending
    assert set(first.requested) <= set(scores)


def test_a_full_round_choice_at_the_screened_edge_asks_for_the_value_beyond():
    """Screening ranked num_models=14 best, the full rounds chose 19, the largest screened: FedFomo's
    next value (its linear step: 24) is screened at lr 0.1 while the budget allows; an interior choice,
    or a spent budget, asks for nothing."""
    import pandas as pd

    from fedbench.tuning.driver import beyond_chosen
    from fedbench.tuning.space import space_of

    lrs = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    space = space_of("fedfomo", lrs)
    configs = [(lr, 4) for lr in lrs] + [(0.1, m) for m in (1, 2, 9, 14, 19)] + [(0.05, 14), (0.2, 14)]
    screened = pd.DataFrame({"variant": [f"v{i}" for i in range(len(configs))], "lr": [c[0] for c in configs],
                             "method.num_models": [c[1] for c in configs]})
    chosen = ["experiment=fmnist_skew_unseen", "method=fedfomo", "lr=0.1", "method.num_models=19"]
    assert beyond_chosen(space, chosen, screened, cap=16) == [(0.1, 24)]
    assert beyond_chosen(space, chosen, screened, cap=15) == []                     # the budget is spent
    assert beyond_chosen(space, [*chosen[:3], "method.num_models=14"], screened, cap=16) == []   # interior
    # at the top of the lr list too: both keys ask, as far as the budget goes
    top = ["method=fedfomo", "lr=1.0", "method.num_models=19"]
    assert beyond_chosen(space, top, screened, cap=17) == [(2.0, 19), (1.0, 24)]
    assert beyond_chosen(space, top, screened, cap=16) == [(2.0, 19)]


def test_a_unit_whose_carried_configurations_all_diverged_carries_the_next_best_one_at_a_time():
    from fedbench.tuning.driver import carried

    order = ["a", "b", "c", "d"]
    assert carried(order, 2, lambda v: None) == ["a", "b"]                                  # not run yet
    assert carried(order, 2, {"a": "diverged", "b": "complete"}.get) == ["a", "b"]          # one trains through
    assert carried(order, 2, {"a": "diverged", "b": "diverged"}.get) == ["a", "b", "c"]     # c, then wait
    assert carried(order, 2, {"a": "diverged", "b": "diverged", "c": "diverged"}.get) == order
    assert carried(order, 2, {"a": "diverged", "b": "diverged", "c": "complete"}.get) == ["a", "b", "c"]
    assert carried(["a"], 2, {"a": "diverged"}.get) == ["a"]                                # nothing left to carry
