"""The memory section of `python -m fedbench.bench`: peak memory at 100 and 1,000 clients (FedProx
Synthetic data, a personal head per client) and the cold data path (generate, partition, split, cache)."""
from __future__ import annotations

import gc
import tempfile
import time

import torch

from fedbench.bench.checks import sync as _sync
from fedbench.bench.runners import Setting, compose


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


def memory_section(args, root: str, device) -> None:
    """Memory at 100 and 1,000 clients, and the cold data path for 1,000 clients."""
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
