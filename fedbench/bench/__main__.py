"""`python -m fedbench.bench [--quick]`: what the harness costs, measured against plain PyTorch.

In ONE process, on one fixed setting (scikit-learn digits, Dirichlet(0.1) over 20 clients, all
clients every round, the default MLP, batch 10, 1 local epoch, lr 0.05, every client evaluated every
5 rounds), it times R rounds of FedAvg and of FedBSD done four ways:

  sequential  fedbench's Federation with engine=sequential: the clients one by one, the same steps as
            the floor, so its time over the floor's is what the harness itself costs.
  floor     a plain PyTorch loop doing exactly the same SGD steps on the same tensors with the same
            model: one model, `load_state_dict` per client, torch.optim.SGD, batches gathered by
            index in the same order, the same evaluation (every client's val and test split).
  typical   the style common in pFL libraries: a DataLoader (Subset of a TensorDataset) per client per
            round, a deep copy of the global model per client, state dicts copied to CPU for
            aggregation, per-client DataLoaders for evaluation (batch = the training batch size, as
            PFLlib does). It does the same SGD steps (its batch sampler replays the same order).
  vmap      fedbench with engine=vmap (each step of all sampled clients as one vmapped call).
The default engine=auto picks one of the two (fedbench.engines.auto_engine): vmap here.

All four compute the same model: the bench checks that their final global parameters agree.
Runners are interleaved block by block (one evaluation period each), so background load on a shared
machine hits all of them alike; reported ratios are of total times. Then it measures memory at 100
and 1,000 clients (FedProx Synthetic data, a personal head per client) and the cold data path
(generate, partition, split) for 1,000 clients. Between the two, every method's seconds per round on
both engines, beside PFLlib's on the same setting (fedbench.bench.methods). Timings are never
asserted: tests only check that the quick mode runs and prints every row.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import sys
import tempfile
import time

import torch

from fedbench.bench.checks import sync as _sync, engines_check, threads_check
from fedbench.bench.methods import MATCHED, SETTING as METHOD_SETTING, method_rows, method_table
from fedbench.bench.runners import SETTING, Floor, Harness, Setting, Typical, compose


# -- measuring --------------------------------------------------------------------------------------
def time_interleaved(runners: dict, rounds: int, block: int, warmup: int, device) -> dict[str, float]:
    """Run `warmup` untimed rounds, then `rounds` timed rounds of every runner, block by block in turn;
    total seconds per runner."""
    for r in runners.values():
        for t in range(warmup):
            r.round(t)
    _sync(device)
    spent = dict.fromkeys(runners, 0.0)
    for start in range(warmup, warmup + rounds, block):
        for name, r in runners.items():
            _sync(device)
            t0 = time.perf_counter()
            for t in range(start, min(start + block, warmup + rounds)):
                r.round(t)
            _sync(device)
            spent[name] += time.perf_counter() - t0
    return spent


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float().to(a[k].device)).abs().max()) for k in a)


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS since the last reset) in MiB, from /proc (Linux)."""
    vals = {}
    try:
        for line in open("/proc/self/status"):
            if line.startswith(("VmRSS", "VmHWM")):
                vals[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak
    return vals.get("VmRSS", float("nan")), vals.get("VmHWM", float("nan"))


def reset_peak(device: torch.device) -> bool:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def memory_case(clients: int, method: str, engine: str, root: str, device: torch.device, rounds: int) -> dict:
    gc.collect()
    base, _ = rss_mb()
    exact = reset_peak(device)
    t0 = time.perf_counter()
    s = Setting(method, ["dataset=synthetic", f"num_clients={clients}", "join_ratio=0.1", "batch_size=10",
                         "partition=dirichlet", "partition.alpha=0.1"], root, device, rounds)
    t_data = time.perf_counter() - t0
    gc.collect()
    loaded, data_peak = rss_mb()
    reset_peak(device)
    fed = s.federation(engine)
    t1 = time.perf_counter()
    for t in range(rounds):
        fed.train_round(t)
    fed.evaluate(rounds - 1)
    _sync(device)
    t_run = time.perf_counter() - t1
    _, run_peak = rss_mb()
    row = {"clients": clients, "method": method, "engine": engine, "samples": len(s.data.y),
           "data_mb": (s.data.x.numel() * s.data.x.element_size() + s.data.y.numel() * 8) / 2 ** 20,
           "store_mb": fed.tensors.store.nbytes() / 2 ** 20, "rss_base_mb": base, "data_peak_mb": data_peak - base,
           "loaded_mb": loaded, "run_peak_mb": run_peak - loaded, "peak_mb": max(data_peak, run_peak),
           "peak_exact": exact, "data_s": t_data, "run_s": t_run, "rounds": rounds}
    if device.type == "cuda":
        row["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    del fed, s
    gc.collect()
    return row


def cold_partition(clients: int, root: str) -> float:
    """Seconds for the whole data path of `clients` Synthetic clients with an empty cache:
    generate, Dirichlet(0.1) partition with min_samples, per-client stratified splits, cache write."""
    from fedbench.data.federated import load_federated

    cfg = compose(["dataset=synthetic", f"num_clients={clients}", "partition=dirichlet", "partition.alpha=0.1"],
                  root)
    t0 = time.perf_counter()
    load_federated(cfg, torch.device("cpu"))
    return time.perf_counter() - t0


def hardware(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = f"{cpu}, {cores} usable cores, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)"
    if device.type == "cuda":
        out += f", GPU {torch.cuda.get_device_name(device)}"
    try:
        out += f", load average at start {os.getloadavg()[0]:.1f}"
    except OSError:
        pass
    return out


# -- main -------------------------------------------------------------------------------------------
def harness_section(root: str, device, rounds: int, block: int) -> dict:
    """FedAvg and FedBSD timed four ways (module docstring): {method: (seconds, agreement, why not
    vmap, auto engine)}."""
    from fedbench.engines import auto_engine, vmap_support

    results = {}
    for method in ("fedavg", "fedbsd"):
        s = Setting(method, SETTING, root, device, rounds + block)
        runners = {"sequential": Harness(s), "floor": Floor(s, method), "typical": Typical(s, method)}
        fed = runners["sequential"].fed
        why = vmap_support(fed.method, fed.model)
        if why is None:
            runners["vmap"] = Harness(s, engine="vmap")
        spent = time_interleaved(runners, rounds, block, block, device)
        ref = runners["floor"].global_state()
        agree = {n: max_diff(ref, r.global_state()) for n, r in runners.items() if n != "floor"}
        auto = auto_engine(fed.method, fed.model, device, len(fed.schedule[0]))
        results[method] = (spent, agree, why, auto)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fedbench.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run for CI (< 60 s): fewer rounds, 1,000 "
                   "clients for memory only with the sequential engine")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 50, quick 5)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", default="auto", help="torch threads (default: fedbench's threads=auto)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory section")
    p.add_argument("--engines-check", action="store_true", help="also time one step of 20 clients, "
                   "sequential vs vmapped, for the MLP, LeNet and the CIFAR CNN (the measurement behind engine=auto)")
    p.add_argument("--threads-check", action="store_true", help="also time SGD steps with 1 thread and with "
                   "every core (slow on a loaded machine: many threads then spin against other processes)")
    args = p.parse_args(argv)

    from fedbench.execution import resolve_device, resolve_threads

    torch.set_num_threads(resolve_threads(args.threads))
    device = resolve_device(args.device)
    rounds = args.rounds or (5 if args.quick else 50)
    block = 5
    rounds = max(block, rounds - rounds % block)
    root = tempfile.mkdtemp(prefix="fedbench-bench-")
    print(f"fedbench.bench: {hardware(device)}", flush=True)
    print(f"setting: {' '.join(SETTING)}, model=mlp (the digits default, 64-100-10), {rounds} timed rounds after {block} warm-up "
          f"rounds, device {device}", flush=True)
    try:
        results = harness_section(root, device, rounds, block)
        print()
        print(table(results, rounds))
        matched = "; ".join(f"{m} {' '.join(o)}" for m, o in MATCHED.items())
        print(f"\nevery method on both engines, on the setting of PFLlib's numbers ({' '.join(METHOD_SETTING)}; "
              f"matched work: {matched}), {2 if args.quick else 20} timed rounds, each with an evaluation of "
              "every client:", flush=True)
        print(method_table(method_rows(root, device, 2 if args.quick else 20)))
        if not args.no_memory:
            print()
            rows = []
            cases = [(100, "fedbsd", "sequential"), (1000, "fedbsd", "sequential"), (1000, "local", "sequential")]
            if not args.quick:
                cases += [(100, "fedbsd", "vmap"), (1000, "fedbsd", "vmap")]
            for clients, method, engine in cases:
                rows.append(memory_case(clients, method, engine, root, device, rounds=2 if args.quick else 5))
            print(memory_table(rows, device))
            cold = cold_partition(1000, tempfile.mkdtemp(dir=root))
            print(f"\ndata path, 1,000 clients, empty cache (Synthetic generation + Dirichlet(0.1) partition + "
                  f"splits + cache write): {cold:.1f} s")
        if args.engines_check:
            print("\nengines (one local step of 20 clients, batch 10, 1 torch thread; median of 3):")
            print(engines_check(device))
        if args.threads_check:
            print("\nthreads (torch intra-op threads, same process, interleaved; load average now "
                  f"{os.getloadavg()[0]:.1f}):")
            print(threads_check())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


LABELS = {"sequential": "harness, engine=sequential", "vmap": "harness, engine=vmap", "floor": "floor",
          "typical": "typical"}


def table(results: dict, rounds: int) -> str:
    lines = ["| method | runner | rounds/s | s/round | time vs floor | agrees with floor (max abs diff) |",
             "|---|---|---|---|---|---|"]
    ratios = []
    for method, (spent, agree, why, auto) in results.items():
        floor = spent["floor"]
        for name, label in LABELS.items():
            if name not in spent:
                lines.append(f"| {method} | {label} | n/a | n/a | n/a | not applicable: {why} |")
                continue
            sec = spent[name] / rounds
            diff = "-" if name == "floor" else f"{agree[name]:.1e}"
            lines.append(f"| {method} | {label} | {1 / sec:.2f} | {sec * 1e3:.1f} ms | {spent[name] / floor:.2f}x "
                         f"| {diff} |")
        default = spent[auto]
        r = (f"{method}: default engine (auto) = {auto}; harness/floor = {spent['sequential'] / floor:.3f} "
             f"(engine=sequential: the same steps one by one; target <= 1.10); typical/harness = "
             f"{spent['typical'] / default:.2f} (default engine; target >= 3)")
        r += f"; typical/sequential = {spent['typical'] / spent['sequential']:.2f}"
        if "vmap" in spent:
            r += f"; typical/vmap = {spent['typical'] / spent['vmap']:.2f}, vmap/floor = {spent['vmap'] / floor:.2f}"
        ratios.append(r)
    return "\n".join(lines + [""] + ratios)


def memory_table(rows: list[dict], device) -> str:
    cuda = device.type == "cuda"
    head = ("| clients | method | engine | samples | data tensors MiB | client store MiB | process RSS before MiB "
            "| peak while loading data, above before MiB | peak while training + evaluating, above loaded MiB "
            "| process peak RSS MiB |" + (" CUDA peak allocated MiB |" if cuda else "")
            + " data load s | rounds + eval s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['clients']} | {r['method']} | {r['engine']} | {r['samples']} | {r['data_mb']:.1f} | "
                     f"{r['store_mb']:.2f} | {r['rss_base_mb']:.0f} | {r['data_peak_mb']:.0f} | "
                     f"{r['run_peak_mb']:.0f} | "
                     f"{r['peak_mb']:.0f} |" + (f" {r['cuda_peak_mb']:.1f} |" if cuda else "")
                     + f" {r['data_s']:.1f} | {r['run_s']:.1f} ({r['rounds']} rounds of 10% + 1 evaluation of all) |")
    if not all(r["peak_exact"] for r in rows):
        lines.append("(peak RSS could not be reset between cases: it is the process peak so far)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
