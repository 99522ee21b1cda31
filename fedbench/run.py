"""One run: validate the config, build data/model/method, run the rounds, write the run directory."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import pandas as pd
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from fedbench.rundir import checkpoint, completion
from fedbench.config import method_class, method_parts, prepare, require_backbone_and_head, require_batchnorm
from fedbench.code import code_record
from fedbench.execution import check_deterministic_model, machine, resolve_device, resolve_threads, set_determinism
from fedbench.data import holdout
from fedbench.data.federated import load_federated
from fedbench.engines import choose_engine
from fedbench.metrics import headline, metrics_row, newcomer_summary
from fedbench.federation import Federation, clients_per_round
from fedbench.federation.finetune import finetune_settings
from fedbench.federation.training import TrainingSettings
from fedbench.models import build_model
from fedbench.optimizer import resolve_optimizer
from fedbench.rundir import CLIENTS, METRICS, TIMING, RunDir, config_hash, path_for
from fedbench.rundir.lock import WriterLock
from fedbench.seeding import jitter_, stream_seed
from fedbench.tracking import open_trackers


def build_method(cfg: DictConfig, model):
    """The method instance for `cfg` on `model` (the same checks as `prepare`, for direct callers)."""
    cls = method_class(cfg.method.name)
    require_batchnorm(cfg, cls, model)
    require_backbone_and_head(cfg, cls, model)
    return method_parts.build_method(cls, cfg.method, model)


def build_federation(cfg: DictConfig, data, model, method, engine: str | None = None, warn=None,
                     newcomers=None) -> Federation:
    """The Federation of a run config over the participants `data`: its training settings, its engine
    (`engine`, default the config's, chosen by fedbench.engines.choose_engine), the fine-tuning add-on
    and the newcomers held out of training (fedbench.data.holdout)."""
    m = clients_per_round(data.num_clients, cfg.join_ratio)
    chosen = choose_engine(engine or str(cfg.engine), method, model, data.x.device, m, warn)
    return Federation(TrainingSettings.from_cfg(cfg), data, model, method, cfg.rounds, cfg.join_ratio, chosen,
                      finetune_settings(cfg.method), newcomers, int(cfg.get("unseen_epochs", 5)))


def job_overrides() -> list[str] | None:
    """The Hydra job's command-line overrides (sweep values included), None outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


def run(cfg: DictConfig) -> dict:
    """One run. Everything that can be checked without data is checked first (prepare), the data
    stage checks the rest; the run directory is created only after both. A complete run is read,
    not recomputed; an interrupted one resumes from its checkpoint (fedbench.rundir.checkpoint).

    Files: metrics.csv and clients.csv hold only numbers that are a function of the config (one
    seed gives byte-identical files); wall-clock time lives in timing.csv and summary.json.
    One process at a time writes a run directory: it holds fedbench.rundir.lock's lock from its first
    write (after the data stage) to its return; a second one stops with RunInProgress."""
    cfg = prepare(cfg)
    rd = RunDir(path_for(cfg))
    with WriterLock(rd.path) as lock:
        return _run(cfg, rd, lock)


def _run(cfg: DictConfig, rd: RunDir, lock: WriterLock) -> dict:
    if (done := completion.finished(rd, False, *reuse(cfg))) is not None:  # read-only: no data, no lock
        return done
    active = start_or_resume(cfg, rd, lock)
    if isinstance(active, dict):  # finished by another process while we loaded the data
        return active
    try:
        summary = finish(active, *round_loop(active))
    except BaseException as exc:
        mark_ended(active, exc)
        raise
    checkpoint.remove(active.rd.checkpoint)
    active.trackers.finish(summary)  # [tracking] the final summary and status, after the run's own files
    print(summary_line(summary, rd), file=sys.stderr)
    return summary


@dataclass
class ActiveRun:
    """A run in progress: its config and directory, data and federation, the rows so far, the round
    it continues at, and the compute time spent before this process (resumed runs)."""

    cfg: DictConfig
    rd: RunDir
    data: object
    fed: Federation
    base: dict
    key: str
    trackers: object = None
    rows: list = field(default_factory=list)
    timing: list = field(default_factory=list)
    ev: dict | None = None
    first: int = 0
    spent: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Compute time over all of the run's segments."""
        return self.spent + time.perf_counter() - self.started

    def save_checkpoint(self, done: int) -> None:
        last = {k: torch.as_tensor(v) for k, v in self.ev.items()} if self.ev is not None else None
        checkpoint.save(self.rd.checkpoint, {
            "format": checkpoint.FORMAT, "key": self.key, "round": done, "federation": self.fed.state_dict(),
            "rng": checkpoint.capture_rng(), "rows": self.rows, "timing": self.timing, "last_eval": last,
            "wall_s": self.elapsed(), "engines": self.base["engines"]})


def reuse(cfg: DictConfig) -> tuple[str, bool]:
    """(code_change, rerun): when a finished run may be reused (fedbench.rundir.completion)."""
    return str(cfg.get("code_change", "rerun")), bool(cfg.get("rerun", False))


def start_or_resume(cfg: DictConfig, rd: RunDir, lock: WriterLock) -> ActiveRun | dict:
    """Data, model, method and federation; then the checkpoint's state if there is a usable one; the
    run directory's config, a `running` summary and the trackers. A dict: the run was finished by
    another process meanwhile (its summary)."""
    set_determinism(bool(cfg.get("deterministic", False)))
    threads = resolve_threads(cfg.threads)
    torch.set_num_threads(threads)
    device = resolve_device(cfg.device)
    data, newcomers = holdout.split(load_federated(cfg, device))
    lock.acquire()
    if (done := completion.finished(rd, True, *reuse(cfg))) is not None:
        return done
    torch.manual_seed(stream_seed(cfg.seed, "init"))
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    jitter_(model, float(cfg.get("init_jitter", 0.0)), cfg.seed)  # (0: untouched) the stability probe of fedbench.tune
    model = model.to(device)
    method = build_method(cfg, model)
    check_deterministic_model(model, data.x, data.y, cfg.model.name)
    new_federation = lambda: build_federation(cfg, data, model, method, newcomers=newcomers)  # noqa: E731
    fed = new_federation()
    base = {"method": cfg.method.name, "dataset": cfg.dataset.name, "partition": cfg.partition.name,
            "seed": cfg.seed, "model": cfg.model.name, "num_clients": cfg.num_clients, "rounds": cfg.rounds,
            "config_hash": config_hash(cfg), "device": str(device), "threads": threads,
            "deterministic": bool(cfg.get("deterministic", False)),
            "partition_cache": data.info.get("partition_cache"), "torch": torch.__version__,
            "machine": machine(device, threads),  # the float path the numbers took (fedbench.execution)
            "code": code_record(),  # the code that computed it (fedbench.code): other code reruns it
            "optimizer": resolve_optimizer(cfg),  # what the run trained with (fedbench.optimizer)
            "overrides": job_overrides(),  # the command line that reproduces it: python -m fedbench <overrides>
            "engines": [fed.engine.name]}
    if newcomers is not None:
        base["unseen_clients"] = newcomers.num_clients
    active = ActiveRun(cfg, rd, data, fed, base, config_hash(cfg, exclude_seed=False))
    state, why = checkpoint.load(active.rd.checkpoint, active.key, cfg.rounds, device) if not cfg.get("rerun") else (None, "")
    if why:
        print(f"fedbench: warning: ignoring checkpoint {active.rd.checkpoint}: {why}; starting from round 0",
              file=sys.stderr)
    if state is not None:
        try:
            fed.load_state_dict(state["federation"])
        except (ValueError, KeyError) as exc:
            print(f"fedbench: warning: ignoring checkpoint {active.rd.checkpoint}: {exc}; starting from round 0",
                  file=sys.stderr)
            active.fed, state = new_federation(), None
    if state is not None:
        checkpoint.restore_rng(state["rng"])
        active.rows, active.timing, active.first, active.spent = list(state["rows"]), list(state["timing"]), state["round"], \
            state["wall_s"]
        active.ev = {k: v.cpu().numpy() for k, v in state["last_eval"].items()} if state["last_eval"] else None
        base["resumed_from_round"] = active.first
        base["engines"] = list(dict.fromkeys([*state.get("engines", []), fed.engine.name]))  # every engine used
        print(f"fedbench: resuming {rd.path} from round {active.first}", file=sys.stderr)
    checkpoint.remove_temp_files(rd.path)
    rd.write_config(cfg)
    rd.write_summary(base | {"status": "running"})
    active.trackers = open_trackers(cfg, rd.path, resumed_from_round=active.first)  # [tracking] start or resume
    active.started = time.perf_counter()  # (tracker start-up is not compute time)
    return active


def round_loop(active: ActiveRun) -> tuple[str, int | None]:
    """The rounds from active.first on: train, stop on divergence, evaluate every eval_every rounds
    (metrics.csv, timing.csv, trackers), checkpoint every checkpoint_every rounds and on a stop
    signal. Returns (status, the round it diverged at); a failure or interruption is raised (the
    caller marks the summary: mark_ended)."""
    cfg, fed, rd = active.cfg, active.fed, active.rd
    every = int(cfg.get("checkpoint_every", 0) or 0)
    with checkpoint.StopSignals() as signals:
        bar = tqdm(range(active.first, cfg.rounds), desc=f"{cfg.method.name}", disable=not cfg.progress,
                   file=sys.stderr, initial=active.first, total=cfg.rounds)
        for t in bar:
            loss = fed.train_round(t)
            if not math.isfinite(loss) or not fed.finite():
                return "diverged", t + 1
            if (t + 1) % cfg.eval_every == 0 or t + 1 == cfg.rounds:
                active.ev = fed.evaluate(t)
                active.rows.append(metrics_row(t + 1, active.ev, loss, active.data.sizes, fed.bytes_up, fed.bytes_down))
                active.timing.append({"round": t + 1, "wall_s": active.elapsed()})
                rd.write_csv(METRICS, pd.DataFrame(active.rows))
                rd.write_csv(TIMING, pd.DataFrame(active.timing))
                active.trackers.log_row(t + 1, active.rows[-1])  # [tracking] this evaluation round, after metrics.csv
                bar.set_postfix(acc=f"{active.rows[-1]['test_acc']:.3f}", loss=f"{loss:.3f}")
            due = every > 0 and (t + 1) % every == 0 and t + 1 < cfg.rounds
            if due or signals.pending is not None:
                active.save_checkpoint(t + 1)
                signals.dispatch(t + 1, active.rd.checkpoint)
    return "complete", None


def mark_ended(active: ActiveRun, exc: BaseException) -> None:
    """A run stopped by `exc` before its summary was complete: summary.json says interrupted (a stop
    signal, Ctrl-C, a job stopped) or failed, with the error, where the disk still allows it; then the
    trackers are told the same."""
    stopped = (isinstance(exc, (checkpoint.Interrupted, KeyboardInterrupt, SystemExit))
               or type(exc).__name__ == "UncompletedJobError")  # submitit: stopped, not requeued
    ended = active.base | {"status": "interrupted" if stopped else "failed",
                        "error": f"{type(exc).__name__}: {exc}".strip().rstrip(":"),
                        "wall_time_s": active.elapsed()}
    active.rd.try_write_summary(ended)
    active.trackers.finish(ended)  # [tracking] failed / interrupted, after summary.json


def finish(active: ActiveRun, status: str, stop_round: int | None) -> dict:
    """The summary (headline numbers, bytes, coverage), clients.csv and the files' checksums, written;
    returns the summary."""
    cfg, fed, data, rd = active.cfg, active.fed, active.data, active.rd
    wall = active.elapsed()
    summary = active.base | {"status": status, "wall_time_s": wall, "bytes_up": fed.bytes_up,
                          "bytes_down": fed.bytes_down, **fed.compute.summary(), "rounds_done": stop_round or cfg.rounds,
                          "coverage": float((fed.times_sampled > 0).mean())}
    if stop_round:
        summary["diverged_round"] = stop_round
    if active.rows:
        summary |= headline(pd.DataFrame(active.rows), cfg.eval_final_k)
    if active.ev is not None:
        clients = client_table(data, active.ev, fed.times_sampled)
        if fed.newcomers is not None and not stop_round:  # welcomed once, after the last round
            welcomed = fed.newcomers.evaluate(cfg.rounds - 1)
            summary |= newcomer_summary(active.rows[-1]["test_acc"], welcomed, fed.newcomers.data.sizes)
            summary |= fed.newcomers.spent()
            clients = pd.concat([clients.assign(unseen=0), client_table(fed.newcomers.data, welcomed).assign(unseen=1)])
            clients = clients.sort_values("client", kind="stable")
        rd.write_csv(CLIENTS, clients)
    summary["files"] = completion.record(rd.path)  # row counts and checksums: complete means these files
    rd.write_summary(summary)
    return summary


def client_table(data, ev: dict, times_sampled=None) -> pd.DataFrame:
    """clients.csv's rows of `data`'s clients (their ids in the whole federation where some are held out)."""
    ids = data.info.get("client_ids", range(data.num_clients))
    return pd.DataFrame({"client": ids, "n_train": data.sizes[:, 0], "n_val": data.sizes[:, 1],
                         "n_test": data.sizes[:, 2], "test_acc": ev["test_acc"], "val_acc": ev["val_acc"],
                         "test_loss": ev["test_loss"],
                         "times_sampled": times_sampled if times_sampled is not None else 0})


def summary_line(s: dict, rd: RunDir) -> str:
    if s["status"] != "complete" or "final_acc" not in s:
        at = f" at round {s['diverged_round']} (NaN/inf loss or parameters)" if s.get("diverged_round") else ""
        return f"fedbench: {s['method']} on {s['dataset']} seed {s['seed']}: {s['status']}{at} -> {rd.path}"
    return (f"fedbench: {s['method']} on {s['dataset']}/{s['partition']} seed {s['seed']}: "
            f"final acc {100 * s['final_acc']:.2f}% (weighted {100 * s['final_acc_weighted']:.2f}%, "
            f"bottom10 {100 * s['final_acc_bottom10']:.2f}%), best-by-val {100 * s['best_acc']:.2f}% "
            f"@ round {s['best_round']}, {s['wall_time_s']:.1f} s, up {s['bytes_up'] / 1e6:.2f} MB, "
            f"down {s['bytes_down'] / 1e6:.2f} MB{unseen_words(s)} -> {rd.path}")


def unseen_words(s: dict) -> str:
    if "unseen_acc" not in s:
        return ""
    return (f", unseen {100 * s['unseen_acc']:.2f}% ({s['unseen_clients']} newcomers, gap "
            f"{100 * s['participation_gap']:+.2f})")
