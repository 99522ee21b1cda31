"""The round loop: sample clients, train them locally, aggregate on the server, evaluate everyone.

One model object is reused for every client: before a client acts, the live model is loaded with the
global (shared) tensors and then the client's personal tensors from the store; after local training
its personal tensors are written back. Nothing is deep-copied per client.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from fedbench.client import Client
from fedbench.data.types import FederatedData
from fedbench.evaluation import evaluate_model, segment_sums  # noqa: F401 (evaluate_model: re-export)
from fedbench.finetune import finetune, finetune_settings
from fedbench.optimizer import lr_at, resolve_optimizer
from fedbench.seeding import numpy_rng
from fedbench.store import ClientStore, nbytes


@dataclass(frozen=True)
class TrainConfig:
    """The run-level training hyperparameters a client needs, as a plain (fast) object: the run's
    optimizer (fedbench.optimizer: the same for every method unless a method config sets its own)."""

    seed: int
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    local_epochs: int
    rounds: int = 1
    eval_batch_size: int = 1024
    lr_schedule: str = "constant"
    lr_milestones: tuple = (0.5, 0.75)
    lr_gamma: float = 0.1

    @classmethod
    def from_cfg(cls, cfg) -> "TrainConfig":
        opt = resolve_optimizer(cfg)
        return cls(int(cfg.seed), opt["lr"], opt["momentum"], opt["weight_decay"], int(cfg.batch_size),
                   int(cfg.local_epochs), int(cfg.rounds), lr_schedule=opt["lr_schedule"],
                   lr_milestones=tuple(opt["lr_milestones"]), lr_gamma=opt["lr_gamma"])

    def lr_at(self, t: int) -> float:
        """The learning rate of round t (the run's schedule)."""
        return lr_at(self.lr, self.lr_schedule, self.lr_milestones, self.lr_gamma, self.rounds, t)

    @property
    def final_lr(self) -> float:
        """The learning rate of the last round (FedBABU fine-tunes at it)."""
        return self.lr_at(self.rounds - 1)


def clients_per_round(num_clients: int, join_ratio: float) -> int:
    """m = max(floor(join_ratio * K), 1)."""
    return max(int(math.floor(join_ratio * num_clients + 1e-9)), 1)


def sampling_schedule(seed: int, rounds: int, num_clients: int, join_ratio: float) -> np.ndarray:
    """(rounds, m) client ids, m = clients_per_round(K, join_ratio), drawn per round from the
    sampling stream before training: identical for every method at a given seed."""
    m = clients_per_round(num_clients, join_ratio)
    return np.stack([np.sort(numpy_rng(seed, "sampling", t).choice(num_clients, m, replace=False))
                     for t in range(rounds)]) if rounds else np.zeros((0, m), dtype=np.int64)


class Federation:
    engine = "sequential"  # fedbench.engines

    def __init__(self, hp: TrainConfig, data: FederatedData, model, method, rounds: int, join_ratio: float):
        self.hp, self.data, self.model, self.method = hp, data, model, method
        self.live = dict(model.state_dict(keep_vars=True))
        self.shared = model.keys(method.shared)
        self.personal = model.keys(method.personal)
        # personal tensors each phase takes from the client's copy (the rest of them: the global value)
        self.own = {"train": [k for k in self.personal if k not in set(model.keys(method.train_global))],
                    "eval": [k for k in self.personal if k not in set(model.keys(method.eval_global))]}
        self.global_state = {k: self.live[k].detach().clone() for k in self.shared}
        # neither shared nor personal: frozen at the initial value on every client (e.g. FedBABU's head)
        self.fixed = {k: self.live[k].detach().clone() for k in self.live
                      if k not in self.global_state and k not in self.personal}
        init = {k: self.live[k] for k in self.personal} | method.client_state(model)
        self.store = ClientStore(data.num_clients, init)
        self.schedule = sampling_schedule(hp.seed, rounds, data.num_clients, join_ratio)
        self.n_train = np.array([len(c.train) for c in data.clients])
        self.times_sampled = np.zeros(data.num_clients, dtype=np.int64)
        self.bytes_up = self.bytes_down = 0
        self._teacher, self._teacher_fresh, self._spares = None, False, {}
        self.finetune = finetune_settings(method.hp)

    # -- moving state in and out of the live model ---------------------------------------------
    @torch.no_grad()
    def load(self, k: int, phase: str = "train") -> None:
        """Load client k's model for `phase` (train | eval): the global state, then the client's own
        copy of each personal tensor the phase takes from it (`own`). A shared tensor the client keeps
        a copy of is the global one until the client has trained once."""
        for name, value in (self.fixed | self.global_state).items():
            self.live[name].copy_(value)
        view = self.store.view(k)
        trained = self.times_sampled[k] > 0
        for name in self.own[phase]:
            if trained or name not in self.global_state:
                self.live[name].copy_(view[name])

    @torch.no_grad()
    def save(self, k: int) -> None:
        view = self.store.view(k)
        for name in self.personal:
            view[name].copy_(self.live[name])

    def global_model(self):
        """A frozen second model holding the current global state (built once, reloaded per round)."""
        if self._teacher is None:
            self._teacher = copy.deepcopy(self.model).requires_grad_(False).eval()
        if not self._teacher_fresh:
            self._teacher.load_state_dict(self.fixed | self.global_state, strict=False)
            self._teacher_fresh = True
        return self._teacher

    def spare_model(self, name: str):
        """A reusable extra model object per name (built once), for methods that keep a second model."""
        if name not in self._spares:
            self._spares[name] = copy.deepcopy(self.model)
        return self._spares[name]

    def client(self, k: int, round: int, stream: str) -> Client:
        return Client(k, self.model, self.data, self.data.clients[k], self.hp, round, stream,
                      self.store.view(k), self.global_model, self.spare_model)

    # -- one round -----------------------------------------------------------------------------
    def train_round(self, t: int) -> float:
        """Local updates of the round's sampled clients, then aggregation. Returns the mean local loss."""
        sampled = self.schedule[t]
        acc = {k: torch.zeros_like(v, dtype=torch.float64 if v.dtype == torch.float64 else torch.float32)
               for k, v in self.global_state.items()}
        total_w, losses = 0.0, []
        down = nbytes(self.global_state)
        for k in sampled:
            self.load(k)
            client = self.client(int(k), t, "data")
            losses.append(self.method.local_update(client))
            upload = self.method.upload(client, self.shared)
            w = float(self.n_train[k]) if self.method.weighting == "samples" else 1.0
            for name, value in upload.items():
                acc[name].add_(value.detach(), alpha=w)
            total_w += w
            self.save(k)
            self.bytes_down += down
            self.bytes_up += nbytes(upload)
            self.times_sampled[k] += 1
        if self.global_state:
            mean = {k: (v / total_w).to(self.global_state[k].dtype) if self.global_state[k].is_floating_point()
                    else (v / total_w).round().to(self.global_state[k].dtype) for k, v in acc.items()}
            self.global_state = self.method.server_update(self.global_state, mean)
            self._teacher_fresh = False
        return float(np.mean(losses)) if losses else float("nan")

    def evaluate(self, t: int) -> dict[str, np.ndarray]:
        """Every client's personalized model (method.eval_model) on its val and test splits.

        When every client evaluates the same model (nothing personal, the default eval_model, no
        fine-tuning: e.g. FedAvg), all clients' val and test samples go through it in one pass of
        large batches, with one host sync; otherwise client by client."""
        if self._same_eval_model():
            return self._evaluate_shared()
        out = {key: np.zeros(self.data.num_clients) for key in ("val_acc", "test_acc", "test_loss")}
        was_training = self.model.training
        self.model.eval()  # once, not per client and split (evaluate_model then leaves the mode alone)
        for k in range(self.data.num_clients):
            self.load(k, "eval")
            client = self.client(k, t, "finetune")
            model = self.method.eval_model(client)
            if self.finetune:
                finetune(client, model, **self.finetune)
            split = self.data.clients[k]
            for name, idx in (("val", split.val), ("test", split.test)):
                acc, loss = evaluate_model(model, self.data.x, self.data.y, idx, self.hp.eval_batch_size)
                out[f"{name}_acc"][k] = acc
                if name == "test":
                    out["test_loss"][k] = loss
        self.model.train(was_training)
        return out

    def _evaluate_shared(self) -> dict[str, np.ndarray]:
        K = self.data.num_clients
        idx, seg, counts = self._eval_index()
        self.load(0)  # the global state: nothing is personal
        correct, loss = segment_sums(self.model, self.data.x, self.data.y, idx, seg, 2 * K, self.hp.eval_batch_size)
        correct, loss = correct.view(K, 2).cpu().numpy(), loss.view(K, 2).cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(counts > 0, correct / counts, np.nan)
            mean_loss = np.where(counts > 0, loss / counts, np.nan)
        return {"val_acc": acc[:, 0], "test_acc": acc[:, 1], "test_loss": mean_loss[:, 1]}

    def _eval_index(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """(indices, segment ids, (K, 2) counts): client k's val then test samples, in client order;
        segment 2k is k's val split, 2k + 1 its test split. Built once."""
        if getattr(self, "_eval_cache", None) is None:
            parts, segs = [], []
            counts = np.zeros((self.data.num_clients, 2), dtype=np.int64)
            for k, c in enumerate(self.data.clients):
                for j, part in enumerate((c.val, c.test)):
                    parts.append(part)
                    segs.append(torch.full((len(part),), 2 * k + j, dtype=torch.int64, device=part.device))
                    counts[k, j] = len(part)
            dev = self.data.x.device
            self._eval_cache = (torch.cat(parts).to(dev) if parts else torch.zeros(0, dtype=torch.int64, device=dev),
                                torch.cat(segs).to(dev) if segs else torch.zeros(0, dtype=torch.int64, device=dev),
                                counts)
        return self._eval_cache

    def _same_eval_model(self) -> bool:
        """True when every client evaluates the same model: nothing personal, the default eval_model
        (the loaded model itself) and no fine-tuning."""
        from methods.fedavg import FedAvg

        return (not self.own["eval"] and not self.finetune
                and getattr(type(self.method), "eval_model", None) is FedAvg.eval_model)

    def finite(self) -> bool:
        """False when any global or personal tensor holds NaN or inf (divergence). One host sync."""
        tensors = [t for t in list(self.global_state.values()) + list(self.store.tensors.values())
                   if t.is_floating_point() and t.numel()]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True

    # -- checkpointing (fedbench.checkpoint) ----------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a run changes (data, schedule and initial model are rebuilt from the config):
        tensors and plain values only, so it loads with torch.load(weights_only=True)."""
        method = self.method.state_dict() if hasattr(self.method, "state_dict") else {}
        return {"global_state": dict(self.global_state), "fixed": dict(self.fixed),
                "store": dict(self.store.tensors), "bytes_up": int(self.bytes_up),
                "bytes_down": int(self.bytes_down), "times_sampled": torch.from_numpy(self.times_sampled.copy()),
                "method": method}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`; ValueError when its names, shapes or dtypes differ from this run's."""
        for part, mine in (("global_state", self.global_state), ("fixed", self.fixed),
                           ("store", self.store.tensors)):
            theirs = state[part]
            if set(theirs) != set(mine) or any(theirs[k].shape != v.shape or theirs[k].dtype != v.dtype
                                               for k, v in mine.items()):
                raise ValueError(f"checkpoint {part} does not match this run's tensors")
        self.global_state = {k: state["global_state"][k].to(v.device).clone() for k, v in self.global_state.items()}
        for k, v in self.fixed.items():
            v.copy_(state["fixed"][k])
        for k, v in self.store.tensors.items():
            v.copy_(state["store"][k])
        self.bytes_up, self.bytes_down = int(state["bytes_up"]), int(state["bytes_down"])
        self.times_sampled = state["times_sampled"].cpu().numpy().astype(np.int64).copy()
        if hasattr(self.method, "load_state_dict"):
            self.method.load_state_dict(state["method"])
        self._teacher_fresh = False
