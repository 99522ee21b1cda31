"""`python -m fedbench.bench [--quick]`: what the harness costs, measured against plain PyTorch.

In ONE process, on one fixed setting (scikit-learn digits, Dirichlet(0.1) over 20 clients, all
clients every round, the default MLP, batch 10, 1 local epoch, lr 0.05, every client evaluated every
5 rounds), it times R rounds of FedAvg and of FedBSD done four ways:

  harness   fedbench's Federation (engine=sequential): what `python -m fedbench` runs.
  floor     a plain PyTorch loop doing exactly the same SGD steps on the same tensors with the same
            model: one model, `load_state_dict` per client, torch.optim.SGD, batches gathered by
            index in the same order, the same evaluation (every client's val and test split).
  typical   the style common in pFL libraries: a DataLoader (Subset of a TensorDataset) per client per
            round, a deep copy of the global model per client, state dicts copied to CPU for
            aggregation, per-client DataLoaders for evaluation (batch = the training batch size, as
            PFLlib does). It does the same SGD steps (its batch sampler replays the same order).
  vmap      fedbench with engine=vmap (all sampled clients' steps as one vmapped call).

All four compute the same model: the bench checks that their final global parameters agree.
Runners are interleaved block by block (one evaluation period each), so background load on a shared
machine hits all of them alike; reported ratios are of total times. Then it measures memory at 100
and 1,000 clients (FedProx Synthetic data, a personal head per client) and the cold data path
(generate, partition, split) for 1,000 clients. Timings are never asserted: tests only check that
the quick mode runs and prints every row.
"""
from __future__ import annotations

import argparse
import copy
import gc
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

SETTING = ["dataset=digits", "partition=dirichlet", "partition.alpha=0.1", "num_clients=20", "join_ratio=1.0",
           "batch_size=10", "local_epochs=1", "lr=0.05", "eval_every=5", "seed=0"]


# -- setup ----------------------------------------------------------------------------------------
def compose(overrides: list[str], root: str):
    from hydra import compose as hydra_compose, initialize_config_dir

    from fedbench.cli import CONF_DIR
    from fedbench.config import prepare

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="bench"):
        cfg = hydra_compose(config_name="config", overrides=[*overrides, f"data.root={root}",
                                                             "results_dir=" + root])
    return prepare(cfg)


class Setting:
    """The data and config for one method; `model()` builds the same initial model every time."""

    def __init__(self, method: str, overrides: list[str], root: str, device: torch.device, rounds: int):
        from fedbench.data.federated import load_federated

        self.cfg = compose([*overrides, f"method={method}", f"rounds={rounds}"], root)
        self.device = device
        self.data = load_federated(self.cfg, device)

    def model(self):
        from fedbench.models import build_model
        from fedbench.seeding import stream_seed

        torch.manual_seed(stream_seed(self.cfg.seed, "init"))
        return build_model(self.cfg.model, self.data.input_shape, self.data.num_classes).to(self.device)

    def federation(self, engine: str = "sequential"):
        from fedbench.engines import build_federation
        from fedbench.federation import TrainConfig
        from fedbench.run import build_method

        model = self.model()
        return build_federation(engine, TrainConfig.from_cfg(self.cfg), self.data, model,
                                build_method(self.cfg, model), self.cfg.rounds, self.cfg.join_ratio)


def batch_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """fedbench's batching rule, restated: fixed-size batches, a trailing single sample joins the
    previous batch."""
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


# -- the runners: each does round t (local training + aggregation, evaluation when due) ------------
class Harness:
    def __init__(self, s: Setting, engine: str = "sequential"):
        self.fed, self.every = s.federation(engine), s.cfg.eval_every

    def round(self, t: int) -> None:
        self.fed.train_round(t)
        if (t + 1) % self.every == 0:
            self.fed.evaluate(t)

    def global_state(self) -> dict:
        return self.fed.global_state

    def sync(self) -> None:
        pass


class Floor:
    """Plain PyTorch: the same steps, written as one would by hand for this experiment."""

    def __init__(self, s: Setting, method: str):
        from fedbench.federation import sampling_schedule

        cfg, self.data = s.cfg, s.data
        self.model, self.method, self.cfg = s.model(), method, cfg
        self.schedule = sampling_schedule(cfg.seed, cfg.rounds, self.data.num_clients, cfg.join_ratio)
        state = self.model.state_dict()
        hp = cfg.method
        self.lam, self.tau = float(hp.get("lam", 0.0)), float(hp.get("tau", 1.0))  # plain floats, as by hand
        if method == "fedavg":
            self.shared = list(state)
            self.heads = None
        else:  # fedbsd: the backbone is averaged (plain mean), each client keeps its head
            self.shared = [k for k in state if k.startswith("backbone.")]
            head = {k: v.clone() for k, v in state.items() if k.startswith("head.")}
            self.heads = [{k: v.clone() for k, v in head.items()} for _ in range(self.data.num_clients)]
            self.teacher = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.glob = {k: state[k].clone() for k in self.shared}

    def loss(self, x, y):
        if self.method == "fedavg":
            return F.cross_entropy(self.model(x), y)
        f = self.model.backbone(x)
        with torch.no_grad():
            g = self.teacher.backbone(x)
        kl = F.kl_div(F.log_softmax(f / self.tau, 1), F.log_softmax(g / self.tau, 1), reduction="batchmean",
                      log_target=True) * self.tau * self.tau
        return F.cross_entropy(self.model.head(f), y) + self.lam * kl

    def round(self, t: int) -> None:
        from fedbench.seeding import torch_generator

        x, y, cfg = self.data.x, self.data.y, self.cfg
        if self.heads is not None:
            self.teacher.load_state_dict(self.glob, strict=False)
        acc = {k: torch.zeros_like(v) for k, v in self.glob.items()}
        total = 0.0
        for k in self.schedule[t]:
            idx = self.data.clients[k].train
            self.model.load_state_dict(self.glob | (self.heads[k] if self.heads else {}), strict=False)
            opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
            g = torch_generator(cfg.seed, "data", t, k)
            for _ in range(cfg.local_epochs):
                order = idx[torch.randperm(len(idx), generator=g).to(idx.device)]
                for a, b in batch_bounds(len(idx), cfg.batch_size):
                    opt.zero_grad()
                    self.loss(x[order[a:b]], y[order[a:b]]).backward()
                    opt.step()
            w = float(len(idx)) if self.heads is None else 1.0
            state = self.model.state_dict()
            for name in acc:
                acc[name] += w * state[name]
            total += w
            if self.heads is not None:
                self.heads[k] = {n: state[n].clone() for n in self.heads[k]}
        self.glob = {k: v / total for k, v in acc.items()}
        if (t + 1) % cfg.eval_every == 0:
            self.evaluate()

    @torch.no_grad()
    def evaluate(self) -> np.ndarray:
        self.model.eval()
        self.model.load_state_dict(self.glob, strict=False)
        out = []
        for k, c in enumerate(self.data.clients):
            if self.heads is not None:
                self.model.load_state_dict(self.heads[k], strict=False)
            for idx in (c.val, c.test):
                logits = self.model(self.data.x[idx])
                out.append(((logits.argmax(1) == self.data.y[idx]).float().mean().item(),
                            F.cross_entropy(logits, self.data.y[idx]).item()))
        self.model.train()
        return np.array(out)

    def global_state(self) -> dict:
        return self.glob

    def sync(self) -> None:
        pass


class Typical(Floor):
    """The pFL-library style: per-client DataLoader, deepcopy, state dicts to CPU."""

    def __init__(self, s: Setting, method: str):
        super().__init__(s, method)
        from torch.utils.data import TensorDataset

        self.dataset = TensorDataset(self.data.x.cpu(), self.data.y.cpu())
        self.global_model = self.model
        self.heads = ([{k: v.cpu() for k, v in h.items()} for h in self.heads] if self.heads is not None else None)

    def round(self, t: int) -> None:
        from torch.utils.data import DataLoader, Subset

        from fedbench.seeding import torch_generator

        cfg, dev = self.cfg, self.data.x.device
        uploads = []
        for k in self.schedule[t]:
            idx = self.data.clients[k].train
            model = copy.deepcopy(self.global_model)  # the client's copy of the received model
            if self.heads is not None:
                model.load_state_dict({n: v.to(dev) for n, v in self.heads[k].items()}, strict=False)
                teacher = copy.deepcopy(self.global_model).eval()
            g = torch_generator(cfg.seed, "data", t, k)
            batches = []
            for _ in range(cfg.local_epochs):  # the same order as fedbench's, as positions in the subset
                perm = torch.randperm(len(idx), generator=g)
                batches += [perm[a:b].tolist() for a, b in batch_bounds(len(idx), cfg.batch_size)]
            loader = DataLoader(Subset(self.dataset, idx.cpu().tolist()), batch_sampler=batches)
            opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
            model.train()
            for xb, yb in loader:
                xb, yb = xb.to(dev), yb.to(dev)
                opt.zero_grad()
                if self.heads is None:
                    loss = F.cross_entropy(model(xb), yb)
                else:
                    f = model.backbone(xb)
                    with torch.no_grad():
                        tf = teacher.backbone(xb)
                    loss = F.cross_entropy(model.head(f), yb) + self.lam * (F.kl_div(
                        F.log_softmax(f / self.tau, 1), F.log_softmax(tf / self.tau, 1), reduction="batchmean",
                        log_target=True) * self.tau * self.tau)
                loss.backward()
                opt.step()
            state = {n: v.detach().cpu().clone() for n, v in model.state_dict().items()}
            uploads.append((float(len(idx)) if self.heads is None else 1.0, state))
            if self.heads is not None:
                self.heads[k] = {n: state[n] for n in self.heads[k]}
        total = sum(w for w, _ in uploads)
        new = {n: sum(w * s[n] for w, s in uploads) / total for n in self.shared}
        self.global_model.load_state_dict({n: v.to(dev) for n, v in new.items()}, strict=False)
        self.glob = {n: v.to(dev) for n, v in new.items()}
        if (t + 1) % cfg.eval_every == 0:
            self.evaluate()

    @torch.no_grad()
    def evaluate(self) -> np.ndarray:
        from torch.utils.data import DataLoader, Subset

        dev, out = self.data.x.device, []
        for k, c in enumerate(self.data.clients):
            model = copy.deepcopy(self.global_model).eval()
            if self.heads is not None:
                model.load_state_dict({n: v.to(dev) for n, v in self.heads[k].items()}, strict=False)
            for idx in (c.val, c.test):
                correct, loss, n = 0, 0.0, 0
                for xb, yb in DataLoader(Subset(self.dataset, idx.cpu().tolist()), batch_size=self.cfg.batch_size):
                    xb, yb = xb.to(dev), yb.to(dev)
                    logits = model(xb)
                    correct += (logits.argmax(1) == yb).sum().item()
                    loss += F.cross_entropy(logits, yb, reduction="sum").item()
                    n += len(yb)
                out.append((correct / max(n, 1), loss / max(n, 1)))
        return np.array(out)


# -- measuring --------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
           "store_mb": fed.store.nbytes() / 2 ** 20, "rss_base_mb": base, "data_peak_mb": data_peak - base,
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


def threads_check(reps: int = 3) -> str:
    """ms per SGD step (median of `reps`) with 1 thread and with every core, for the default MLP and the
    CIFAR CNN at batch 10: the measurement behind threads=auto."""
    from fedbench.models import cnn, mlp

    cores = os.cpu_count() or 1
    before = torch.get_num_threads()
    lines = [f"| model, batch | 1 thread ms/step | {cores} threads ms/step |", "|---|---|---|"]
    torch.manual_seed(0)
    for name, model, x, steps in (("mlp 64-128-64-10, 10", mlp((64,), 10), torch.randn(10, 64), 200),
                                  ("cnn (CIFAR), 10", cnn((3, 32, 32), 10), torch.randn(10, 3, 32, 32), 20),
                                  ("cnn (CIFAR), 64", cnn((3, 32, 32), 10), torch.randn(64, 3, 32, 32), 5)):
        y = torch.randint(0, 10, (len(x),))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        res = {1: [], cores: []}
        for _ in range(reps):
            for n in res:
                torch.set_num_threads(n)
                t0 = time.perf_counter()
                for _ in range(steps):
                    opt.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    opt.step()
                res[n].append((time.perf_counter() - t0) / steps * 1e3)
        lines.append(f"| {name} | {np.median(res[1]):.2f} | {np.median(res[cores]):.2f} |")
    torch.set_num_threads(before)
    return "\n".join(lines)


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
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fedbench.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run for CI (< 60 s): fewer rounds, 1,000 "
                   "clients for memory only with the sequential engine")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 50, quick 5)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", default="auto", help="torch threads (default: fedbench's threads=auto)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory section")
    p.add_argument("--threads-check", action="store_true", help="also time SGD steps with 1 thread and with "
                   "every core (slow on a loaded machine: many threads then spin against other processes)")
    args = p.parse_args(argv)

    from fedbench.runtime import resolve_device, resolve_threads
    from fedbench.engines import vmap_support

    torch.set_num_threads(resolve_threads(args.threads))
    device = resolve_device(args.device)
    rounds = args.rounds or (5 if args.quick else 50)
    block = 5
    rounds = max(block, rounds - rounds % block)
    root = tempfile.mkdtemp(prefix="fedbench-bench-")
    print(f"fedbench.bench: {hardware(device)}", flush=True)
    print(f"setting: {' '.join(SETTING)}, model=mlp (64-128-64-10), {rounds} timed rounds after {block} warm-up "
          f"rounds, device {device}", flush=True)
    try:
        results = {}
        for method in ("fedavg", "fedbsd"):
            s = Setting(method, SETTING, root, device, rounds + block)
            runners = {"harness": Harness(s), "floor": Floor(s, method), "typical": Typical(s, method)}
            why = vmap_support(runners["harness"].fed.method, runners["harness"].fed.model)
            if why is None:
                runners["vmap"] = Harness(s, engine="vmap")
            spent = time_interleaved(runners, rounds, block, block, device)
            ref = runners["floor"].global_state()
            agree = {n: max_diff(ref, r.global_state()) for n, r in runners.items() if n != "floor"}
            results[method] = (spent, agree, why)
        print()
        print(table(results, rounds))
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
        if args.threads_check:
            print("\nthreads (torch intra-op threads, same process, interleaved; load average now "
                  f"{os.getloadavg()[0]:.1f}):")
            print(threads_check())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def table(results: dict, rounds: int) -> str:
    lines = ["| method | runner | rounds/s | s/round | time vs floor | agrees with floor (max abs diff) |",
             "|---|---|---|---|---|---|"]
    ratios = []
    for method, (spent, agree, why) in results.items():
        floor = spent["floor"]
        for name in ("harness", "floor", "typical", "vmap"):
            if name not in spent:
                lines.append(f"| {method} | {name} | n/a | n/a | n/a | not applicable: {why} |")
                continue
            sec = spent[name] / rounds
            diff = "-" if name == "floor" else f"{agree[name]:.1e}"
            lines.append(f"| {method} | {name} | {1 / sec:.2f} | {sec * 1e3:.1f} ms | {spent[name] / floor:.2f}x "
                         f"| {diff} |")
        r = f"{method}: harness/floor = {spent['harness'] / floor:.3f} (target <= 1.10), " \
            f"typical/harness = {spent['typical'] / spent['harness']:.2f} (target >= 3)"
        if "vmap" in spent:
            r += f", vmap/harness = {spent['vmap'] / spent['harness']:.2f} (time; < 1 means vmap is faster)"
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
