"""Every method's cost per round, on both engines, beside PFLlib's on the same setting.

The setting is the one PFLlib's numbers below were measured on, side by side, on this kind of machine
(2 cores, 1 torch thread; issue #12 of this project, PFLlib d832e76): scikit-learn digits, 20 clients
with 2 classes each, PFLlib's 64-100-10 MLP, batch 10, lr 0.01, every client every round, every
client evaluated every round. Work is matched to PFLlib's per round: FedRep trains its head for one
epoch (PFLlib's default), Per-FedAvg takes 3 meta-steps and pFedMe 7 local iterations. A round here
is one `train_round` and one `evaluate`, after one untimed warm-up round; the two engines are timed
block by block in turn, so background load hits both alike.
"""
from __future__ import annotations

import time

import methods

SETTING = ["experiment=digits_pathological2", "eval_every=1"]
MATCHED = {"fedrep": ["method.head_epochs=1"], "perfedavg": ["method.local_steps=3"],
           "pfedme": ["method.local_steps=7"], "fedbn": ["model.bn=true"]}
# PFLlib's seconds per round on this setting (measured side by side; methods PFLlib has)
PFLLIB = {"fedavg": 0.429, "lgfedavg": 0.209, "fedrod": 0.498, "ditto": 0.713, "fedprox": 0.254, "apfl": 0.378,
          "perfedavg": 0.376, "fedrep": 0.441, "fedbabu": 0.221, "pfedme": 0.719}


def time_method(method: str, root: str, device, rounds: int, block: int = 5) -> dict:
    """Seconds per round of `method` on each engine that can run it, and the default engine's name."""
    from fedbench.bench.runners import Setting
    from fedbench.engines import auto_engine, vmap_support

    s = Setting(method, SETTING + MATCHED.get(method, []), root, device, rounds + 1)
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


def method_rows(root: str, device, rounds: int) -> list[dict]:
    return [time_method(m, root, device, rounds) for m in methods.available()]


def method_table(rows: list[dict]) -> str:
    lines = ["| method | engine=sequential s/round | engine=vmap s/round | default engine | PFLlib s/round "
             "| PFLlib time / default engine time |", "|---|---|---|---|---|---|"]
    for r in rows:
        vm = f"{r['vmap']:.4f}" if "vmap" in r else "n/a (not vectorizable)"
        ref = PFLLIB.get(r["method"])
        ratio = f"{ref / r[r['auto']]:.1f}x" if ref else "-"
        lines.append(f"| {r['method']} | {r['sequential']:.4f} | {vm} | {r['auto']} | "
                     f"{ref if ref else '- (not in PFLlib)'} | {ratio} |")
    return "\n".join(lines)
