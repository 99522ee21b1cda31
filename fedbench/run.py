"""One run: validate the config, build data/model/method, run the rounds, write the run directory."""
from __future__ import annotations

import math
import sys
import time

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from tqdm import tqdm

import methods
from fedbench.config import prepare, resolve_device, resolve_threads
from fedbench.data.federated import load_federated
from fedbench.errors import ConfigError
from fedbench.evaluation import headline, summarize
from fedbench.federation import Federation, TrainConfig
from fedbench.models import build_model
from fedbench.results import RunDir, config_hash, run_dir
from fedbench.seeding import stream_seed


def build_method(cfg: DictConfig, model):
    names = methods.available()
    if cfg.method.name not in names:
        raise ConfigError(f"method={cfg.method.name!r} is not a method; choose one of: {', '.join(names)}")
    cls = methods.get(cfg.method.name)
    if cls.needs_batchnorm and not model.has_batchnorm():
        raise ConfigError(f"method={cfg.method.name!r} needs a model with BatchNorm, but model={cfg.model.name!r} "
                          f"has none; use e.g. model=cnn model.bn=true")
    return cls(cfg.method, model)


def metrics_row(t: int, ev: dict, loss: float, fed: Federation, data, wall: float) -> dict:
    n_test = np.array([len(c.test) for c in data.clients], dtype=float)
    n_val = np.array([len(c.val) for c in data.clients], dtype=float)
    row = {"round": t}
    row |= summarize(ev["test_acc"], n_test, "test_acc")
    row |= summarize(ev["val_acc"], np.maximum(n_val, 1e-12), "val_acc")
    row |= {"test_loss": float(np.nanmean(ev["test_loss"])), "train_loss": loss,
            "bytes_up": fed.bytes_up, "bytes_down": fed.bytes_down, "wall_s": wall}
    return row


def run(cfg: DictConfig) -> dict:
    cfg = prepare(cfg)
    rd = RunDir(run_dir(cfg))
    if rd.is_complete():
        print(f"fedbench: skip, already complete: {rd.path}", file=sys.stderr)
        return rd.summary()
    threads = resolve_threads(cfg.threads)
    torch.set_num_threads(threads)
    device = resolve_device(cfg.device)
    data = load_federated(cfg, device)
    torch.manual_seed(stream_seed(cfg.seed, "init"))
    model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
    method = build_method(cfg, model)
    fed = Federation(TrainConfig.from_cfg(cfg), data, model, method, cfg.rounds, cfg.join_ratio)

    base = {"method": cfg.method.name, "dataset": cfg.dataset.name, "partition": cfg.partition.name,
            "seed": cfg.seed, "model": cfg.model.name, "num_clients": cfg.num_clients, "rounds": cfg.rounds,
            "config_hash": config_hash(cfg), "device": str(device), "threads": threads,
            "partition_cache": data.info.get("partition_cache"), "torch": torch.__version__}
    rd.write_config(cfg)
    rd.write_summary(base | {"status": "running"})
    rows, ev, status, stop_round = [], None, "complete", None
    start = time.perf_counter()
    try:
        bar = tqdm(range(cfg.rounds), desc=f"{cfg.method.name}", disable=not cfg.progress, file=sys.stderr)
        for t in bar:
            loss = fed.train_round(t)
            if not math.isfinite(loss) or not fed.finite():
                status, stop_round = "diverged", t + 1
                break
            if (t + 1) % cfg.eval_every == 0 or t + 1 == cfg.rounds:
                ev = fed.evaluate(t)
                rows.append(metrics_row(t + 1, ev, loss, fed, data, time.perf_counter() - start))
                rd.write_csv("metrics.csv", pd.DataFrame(rows))
                bar.set_postfix(acc=f"{rows[-1]['test_acc']:.3f}", loss=f"{loss:.3f}")
    except BaseException as exc:
        rd.write_summary(base | {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                 "wall_time_s": time.perf_counter() - start})
        raise
    wall = time.perf_counter() - start
    summary = base | {"status": status, "wall_time_s": wall, "bytes_up": fed.bytes_up,
                      "bytes_down": fed.bytes_down, "rounds_done": stop_round or cfg.rounds,
                      "coverage": float((fed.times_sampled > 0).mean())}
    if stop_round:
        summary["diverged_round"] = stop_round
    if rows:
        summary |= headline(pd.DataFrame(rows), cfg.eval_final_k)
    if ev is not None:
        clients = pd.DataFrame({"client": range(data.num_clients),
                                "n_train": [len(c.train) for c in data.clients],
                                "n_val": [len(c.val) for c in data.clients],
                                "n_test": [len(c.test) for c in data.clients],
                                "test_acc": ev["test_acc"], "val_acc": ev["val_acc"],
                                "test_loss": ev["test_loss"], "times_sampled": fed.times_sampled})
        rd.write_csv("clients.csv", clients)
    rd.write_summary(summary)
    print(summary_line(summary, rd), file=sys.stderr)
    return summary


def summary_line(s: dict, rd: RunDir) -> str:
    if s["status"] != "complete" or "final_acc" not in s:
        return f"fedbench: {s['method']} on {s['dataset']} seed {s['seed']}: {s['status']} -> {rd.path}"
    return (f"fedbench: {s['method']} on {s['dataset']}/{s['partition']} seed {s['seed']}: "
            f"final acc {100 * s['final_acc']:.2f}% (weighted {100 * s['final_acc_weighted']:.2f}%, "
            f"bottom10 {100 * s['final_acc_bottom10']:.2f}%), best-by-val {100 * s['best_acc']:.2f}% "
            f"@ round {s['best_round']}, {s['wall_time_s']:.1f} s, up {s['bytes_up'] / 1e6:.2f} MB, "
            f"down {s['bytes_down'] / 1e6:.2f} MB -> {rd.path}")
