"""`python -m fedbench.bench [--quick]`: what the harness costs, measured against plain PyTorch.

In ONE process, on two fixed settings (MLP: scikit-learn digits, Dirichlet(0.1) over 20 clients, all
clients every round, the default MLP, batch 10, 1 local epoch, lr 0.05, every client evaluated every
5 rounds; CNN: Fashion-MNIST, 14,000 images, the same partition and clients, PFLlib's FedAvgCNN, lr
0.005, every client evaluated every round), it times R rounds of FedAvg and of FedBSD done four ways:

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
The default engine=auto picks one of the two (fedbench.engines.auto_engine): vmap for the MLP,
sequential for the CNN on a CPU (convolutions are compute-bound: there the measure is the floor).

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
import os
import platform
import shutil
import sys
import tempfile
import time

import torch

from fedbench.bench.checks import sync as _sync, engines_check, threads_check
from fedbench.bench.memory import memory_section
from fedbench.bench.methods import BENCHES, method_rows, method_table
from fedbench.bench.runners import CNN_SETTING, SETTING, Floor, Harness, Setting, Typical


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
def harness_section(root: str, device, rounds: int, block: int, setting: list) -> dict:
    """FedAvg and FedBSD timed four ways (module docstring) on `setting`: {method: (seconds,
    agreement, why not vmap, auto engine)}."""
    from fedbench.engines import auto_engine, vmap_support

    results = {}
    for method in ("fedavg", "fedbsd"):
        s = Setting(method, setting, root, device, rounds + block)
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
    p.add_argument("--rounds", type=int, default=None, help="timed rounds of the MLP (default 50, quick 5)")
    p.add_argument("--cnn-rounds", type=int, default=None, help="timed rounds of the CNN (default 5, quick 2)")
    p.add_argument("--no-cnn", action="store_true", help="skip the CNN sections (Fashion-MNIST)")
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
    root = tempfile.mkdtemp(prefix="fedbench-bench-")
    print(f"fedbench.bench: {hardware(device)}", flush=True)
    try:
        speed_sections(args, root, device)
        if not args.no_memory:
            memory_section(args, root, device)
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


def cnn_missing(root: str) -> str:
    """'' when Fashion-MNIST's files are found (the CNN sections run), else why not."""
    from fedbench.data.datasets import load_dataset
    from fedbench.errors import DataMissingError

    try:
        load_dataset("fmnist", {"samples": 100}, root, False, False, 0, 1)
    except DataMissingError as exc:
        return str(exc)
    return ""


def speed_sections(args, root: str, device) -> None:
    """The harness against the floor (MLP, then CNN), then every method on both engines beside PFLlib's."""
    missing = "" if args.no_cnn else cnn_missing(root)
    quick_cnn = ["dataset.samples=400", "num_clients=4", "partition.min_samples=5"] if args.quick else []
    models = [("mlp", SETTING, args.rounds or (5 if args.quick else 50), 5, "model=mlp (the digits default, 64-100-10)")]
    if not args.no_cnn and not missing:
        models.append(("cnn", CNN_SETTING + quick_cnn, args.cnn_rounds or (2 if args.quick else 5), 1,
                       "model=cnn (PFLlib's FedAvgCNN, 1x28x28)"))
    for name, setting, rounds, block, model in models:
        rounds = max(block, rounds - rounds % block)
        print(f"\n{name}: {' '.join(setting)}, {model}, {rounds} timed rounds after {block} warm-up rounds, "
              f"device {device}", flush=True)
        print(table(harness_section(root, device, rounds, block, setting), rounds, cnn=name == "cnn"))
    if missing:
        print(f"\ncnn: skipped, Fashion-MNIST not found ({missing})")
    for name, bench in BENCHES.items():
        if name == "cnn" and (args.no_cnn or missing):
            continue
        rounds = (2 if args.quick else 20) if name == "mlp" else (1 if args.quick else 3)
        extra = tuple(quick_cnn) if name == "cnn" else ()
        matched = "; ".join(f"{m} {' '.join(o)}" for m, o in bench.matched.items())
        print(f"\nevery method on both engines, {name}, on the setting of PFLlib's numbers ({' '.join(bench.setting)}; "
              f"matched work: {matched}), {rounds} timed rounds, each with an evaluation of every client:", flush=True)
        quick = args.quick and name == "cnn"  # a smaller setting than PFLlib's: no ratio to show
        print(method_table(method_rows(bench, root, device, rounds, extra, quick=quick), bench, compare=not quick))


LABELS = {"sequential": "harness, engine=sequential", "vmap": "harness, engine=vmap", "floor": "floor",
          "typical": "typical"}


def table(results: dict, rounds: int, cnn: bool = False) -> str:
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
             f"(engine=sequential: the same steps one by one; target <= {1.25 if cnn else 1.10:.2f}); "
             f"default/floor = {default / floor:.3f}; typical/harness = "
             f"{spent['typical'] / default:.2f} (default engine; target >= {1 if cnn else 3})")
        r += f"; typical/sequential = {spent['typical'] / spent['sequential']:.2f}"
        if "vmap" in spent:
            r += f"; typical/vmap = {spent['typical'] / spent['vmap']:.2f}, vmap/floor = {spent['vmap'] / floor:.2f}"
        ratios.append(r)
    return "\n".join(lines + [""] + ratios)


if __name__ == "__main__":
    sys.exit(main())
