"""Every method's cost per round, on both engines, beside PFLlib's on the same setting at matched work.

Two settings, each the one PFLlib's numbers were measured on, side by side, on this kind of machine
(2 cores, 1 torch thread, PFLlib d832e76; every client every round, every client evaluated every round):
  mlp  scikit-learn digits, 20 clients with 2 classes each, PFLlib's 64-100-10 MLP, batch 10, lr 0.01.
       Work matched to PFLlib's per round: FedRep trains its head for one epoch (PFLlib's default),
       Per-FedAvg takes 3 meta-steps and pFedMe 7 local iterations.
  cnn  Fashion-MNIST, 14,000 images (stratified), 20 clients, Dirichlet(0.1), PFLlib's FedAvgCNN, batch
       10, lr 0.005, each client's data split 75/25 train/test as PFLlib's (no validation split).
       Matched: FedRep 1 head epoch; pFedMe and Per-FedAvg 52 local steps (PFLlib: one per batch of
       its epoch, 1,039 batches over 20 clients, x K = 5 inner steps for pFedMe; Per-FedAvg two passes
       of 515 batch pairs); FedBABU without the fine-tuning before each evaluation (PFLlib's FedBABU
       fine-tunes once, after the last round). FedAvg-FT (not in PFLlib) fine-tunes every client before
       every evaluation. Dearer in PFLlib: its
       evaluation also passes every train sample forward (a train loss) and rereads each client's file.
       PFLlib's data here: its own generator on the same 14,000-image subsample size (10,390 of 10,492
       train samples per epoch: drop_last; 3,508 test samples), so the work per round matches in size,
       not sample for sample.
A round here is one `train_round` and one `evaluate`, after one untimed warm-up round; the two engines
are timed block by block in turn, so background load hits both alike.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import methods


@dataclass(frozen=True)
class MethodBench:
    """One setting of the per-method table: its overrides, the matched-work overrides per method,
    and PFLlib's seconds per round there (methods PFLlib has)."""

    name: str
    setting: list
    matched: dict = field(default_factory=dict)
    pfllib: dict = field(default_factory=dict)


MLP = MethodBench(
    "mlp", ["experiment=digits_pathological2", "eval_every=1"],
    {"fedrep": ["method.head_epochs=1"], "perfedavg": ["method.local_steps=3"],
     "pfedme": ["method.local_steps=7"], "fedbn": ["model.bn=true"]},
    {"fedavg": 0.429, "lgfedavg": 0.209, "fedrod": 0.498, "ditto": 0.713, "fedprox": 0.254, "apfl": 0.378,
     "perfedavg": 0.376, "fedrep": 0.441, "fedbabu": 0.221, "pfedme": 0.719})
CNN = MethodBench(
    "cnn", ["dataset=fmnist", "dataset.samples=14000", "partition=dirichlet", "partition.alpha=0.1",
            "num_clients=20", "join_ratio=1.0", "batch_size=10", "local_epochs=1", "lr=0.005", "eval_every=1",
            "data.val_frac=0", "data.test_frac=0.25", "seed=0"],
    {"fedrep": ["method.head_epochs=1"], "perfedavg": ["method.local_steps=52"],
     "pfedme": ["method.local_steps=52"], "fedbn": ["model.bn=true"], "fedbabu": ["method.ft_epochs=0"]},
    # measured side by side here (1 thread; the fastest run at a load <= 2.5 where there was one);
    # FedBN left out: PFLlib's CNN has no BatchNorm, so its FedBN does FedAvg's work
    {"fedavg": 8.59, "local": 8.23, "fedprox": 10.30, "fedper": 8.48, "fedrep": 11.44, "lgfedavg": 8.48,
     "fedbabu": 8.62, "pfedme": 37.83, "perfedavg": 16.00, "ditto": 19.07, "apfl": 15.56, "fedrod": 8.82,
     "fedala": 10.56, "fedcp": 11.61, "gpfl": 13.47, "feddbe": 9.28})
BENCHES = {b.name: b for b in (MLP, CNN)}
IN_PFLLIB = {*CNN.pfllib, "fedbn"}   # every method PFLlib d832e76 has (its FedBN: measured on neither setting)


def time_method(method: str, bench: MethodBench, root: str, device, rounds: int, block: int = 5,
                extra: tuple = (), quick: bool = False) -> dict:
    """Seconds per round of `method` on each engine that can run it, and the default engine's name
    (quick: the matched work without its step counts, and `extra` overrides, to check it runs)."""
    from fedbench.bench.runners import Setting
    from fedbench.engines import auto_engine, vmap_support

    matched = [o for o in bench.matched.get(method, []) if not (quick and o.startswith("method.local_steps"))]
    s = Setting(method, [*bench.setting, *matched, *extra], root, device, rounds + 1)
    feds = {"sequential": s.federation("sequential")}
    if vmap_support(feds["sequential"].method, feds["sequential"].model) is None:
        feds["vmap"] = s.federation("vmap")
    for fed in feds.values():  # warm-up: lazy models, caches
        fed.train_round(0)
        fed.evaluate(0)
    spent = dict.fromkeys(feds, 0.0)
    for start in range(1, rounds + 1, block):
        for name, fed in feds.items():
            t0 = time.perf_counter()
            for t in range(start, min(start + block, rounds + 1)):
                fed.train_round(t)
                fed.evaluate(t)
            spent[name] += time.perf_counter() - t0
    fed = feds["sequential"]
    auto = auto_engine(fed.method, fed.model, device, len(fed.schedule[0]))
    return {"method": method, "auto": auto, **{k: v / rounds for k, v in spent.items()}}


def method_rows(bench: MethodBench, root: str, device, rounds: int, extra: tuple = (), quick: bool = False) -> list[dict]:
    return [time_method(m, bench, root, device, rounds, extra=extra, quick=quick) for m in methods.available()]


def method_table(rows: list[dict], bench: MethodBench, compare: bool = True) -> str:
    lines = ["| method | engine=sequential s/round | engine=vmap s/round | default engine | PFLlib s/round "
             "| PFLlib time / default engine time |", "|---|---|---|---|---|---|"]
    for r in rows:
        vm = f"{r['vmap']:.4f}" if "vmap" in r else "n/a (not vectorizable)"
        ref = bench.pfllib.get(r["method"]) if compare else None
        ratio = f"{ref / r[r['auto']]:.1f}x" if ref else "-"
        missing = ("- (quick setting: not compared)" if not compare else "- (not in PFLlib)"
                   if r["method"] not in IN_PFLLIB else "- (not measured here)")
        lines.append(f"| {r['method']} | {r['sequential']:.4f} | {vm} | {r['auto']} | {ref if ref else missing} | {ratio} |")
    return "\n".join(lines)
