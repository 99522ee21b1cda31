"""The round, written once; the engine (fedbench.engines) only decides how a cohort of clients is
stepped (client by client, or vmapped):

    sampled  = the round's clients, drawn from the sampling stream before training
    cohorts  = each loaded: the global state, then the client's own tensors (Federation.cohort)
    train    = method.local_update(cohort)
    store    = each client's personal tensors, personal model and state written back
    upload   = each client's shared tensors, summed with the method's weights (Aggregator)
    server   = method.server_update(global, weighted mean); bytes counted
    evaluate = every client: method.adapt, fine-tuning add-on, method.predict on val and test

Per-client tensors live in one stacked store (fedbench.store); a cohort works on a copy of its rows.
Nothing here knows a method: what a method does is read from its declared attributes and hooks.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from fedbench.client import Client, _Models
from fedbench.data.types import FederatedData
from fedbench.evaluation import evaluate_assembled, segment_sums
from fedbench.toolkit.finetune import finetune, finetune_settings
from fedbench.run_settings import RunSettings
from fedbench.seeding import numpy_rng
from fedbench.store import ClientStore, nbytes

PERSONAL = "personal_model."


def clients_per_round(num_clients: int, join_ratio: float) -> int:
    """m = max(floor(join_ratio * K), 1)."""
    return max(int(math.floor(join_ratio * num_clients + 1e-9)), 1)


def sampling_schedule(seed: int, rounds: int, num_clients: int, join_ratio: float) -> np.ndarray:
    """(rounds, m) client ids, m = clients_per_round(K, join_ratio), drawn per round from the
    sampling stream before training: identical for every method at a given seed."""
    m = clients_per_round(num_clients, join_ratio)
    return np.stack([np.sort(numpy_rng(seed, "sampling", t).choice(num_clients, m, replace=False))
                     for t in range(rounds)]) if rounds else np.zeros((0, m), dtype=np.int64)


class Aggregator:
    """Running weighted sums of the round's uploads (float32, or float64 for float64 tensors)."""

    def __init__(self, global_state: dict[str, torch.Tensor]):
        self.acc = {k: torch.zeros_like(v, dtype=torch.float64 if v.dtype == torch.float64 else torch.float32)
                    for k, v in global_state.items()}
        self.total = 0.0

    @torch.no_grad()
    def add(self, uploads: dict[str, torch.Tensor], weights: np.ndarray) -> None:
        """Add the uploads of a cohort ({key: (m, ...) tensor}) with one weight per client."""
        for name, acc in self.acc.items():
            stacked = uploads[name]
            if len(weights) == 1:
                acc.add_(stacked[0].detach(), alpha=float(weights[0]))
            else:
                w = torch.as_tensor(weights, dtype=acc.dtype, device=acc.device)
                acc.add_(torch.tensordot(w, stacked.detach().to(acc.dtype), dims=1))
        self.total += float(np.sum(weights))

    def mean(self, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: (v / self.total).to(like[k].dtype) if like[k].is_floating_point()
                else (v / self.total).round().to(like[k].dtype) for k, v in self.acc.items()}


class Federation:
    def __init__(self, run: RunSettings, data: FederatedData, model, method, rounds: int, join_ratio: float,
                 engine):
        self.run, self.data, self.model, self.method, self.engine = run, data, model, method, engine
        method.extend_model(model)  # modules a method adds (e.g. a personal head), before the parts are read
        self.live = dict(model.state_dict(keep_vars=True))
        self.shared = model.keys(method.shared)
        self.personal = model.keys(method.personal)
        # personal tensors each phase takes from the client's copy (the others: the global value)
        self.own = {"train": [k for k in self.personal if k not in set(model.keys(method.train_global))],
                    "eval": [k for k in self.personal if k not in set(model.keys(method.eval_global))]}
        self.global_state = {k: self.live[k].detach().clone() for k in self.shared}
        # neither shared nor personal: frozen at the initial value on every client (e.g. a head fixed at init)
        self.fixed = {k: self.live[k].detach().clone() for k in self.live
                      if k not in self.global_state and k not in self.personal}
        self.personal_module = copy.deepcopy(model) if method.personal_model else None
        self.step_models = _Models(model, self.personal_module)
        init = {k: self.live[k] for k in self.personal}
        if self.personal_module is not None:  # the personal model starts as a copy of the initial model
            init |= {PERSONAL + k: v for k, v in model.state_dict().items()}
        init |= method.client_state(model)
        self.store = ClientStore(data.num_clients, init)
        self.schedule = sampling_schedule(run.seed, rounds, data.num_clients, join_ratio)
        self.n_train = np.array([len(c.train) for c in data.clients])
        self.class_counts = torch.stack([torch.bincount(data.y[c.train], minlength=data.num_classes)
                                         for c in data.clients]).float() if data.clients else None
        self.times_sampled = np.zeros(data.num_clients, dtype=np.int64)
        self.bytes_up = self.bytes_down = 0
        self.finetune = finetune_settings(method.hp)
        self._global_module = None

    # -- the clients' tensors -----------------------------------------------------------------------
    @torch.no_grad()
    def cohort(self, ids, t: int, phase: str, stream: str = "data", vmapped: bool = False) -> Client:
        """Clients `ids` (ordered by decreasing train size) as `phase` (train | eval) loads them: the
        global (or fixed) value of every model tensor, then the client's own copy of each personal
        tensor the phase takes from it (of a shared one only once the client has trained), its
        personal model and state; working copies with a leading client dimension."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = torch.as_tensor(ids, device=self.data.x.device)
        base = self.fixed | self.global_state
        trained = torch.as_tensor(self.times_sampled[ids] > 0, device=rows.device)
        own = set(self.own[phase])
        state = {}
        for n, t0 in self.live.items():
            value = base.get(n, t0.detach()).unsqueeze(0).expand(len(ids), *t0.shape)
            if n in own:
                mine = self.store.tensors[n].index_select(0, rows)
                value = torch.where(trained.view(-1, *([1] * t0.dim())), mine, value) if n in base else mine
            state["model." + n] = value.clone()
        for n, t0 in self.store.tensors.items():
            if n not in self.live:
                state[n] = t0.index_select(0, rows)
        if self.class_counts is not None:
            state["class_counts"] = self.class_counts.index_select(0, rows.to(self.class_counts.device))
        return Client(self, ids, t, state, stream, vmapped)

    def client(self, k: int, t: int, stream: str = "data", phase: str = "train") -> Client:
        """Client k alone, as round t's `phase` loads it (a cohort of one)."""
        return self.cohort([k], t, phase, stream)

    @torch.no_grad()
    def load(self, k: int, phase: str = "train") -> None:
        """Put client k's `phase` model into the live model (to inspect it; the round never needs it)."""
        for n, t in self.cohort([k], 0, phase).model.state_dict().items():
            self.live[n].copy_(t)

    def evaluated(self, ids, t: int, vmapped: bool = False) -> Client:
        """Clients `ids` (or one client id) as round t's evaluation tests them: their eval-phase tensors
        after the method's adapt hook and the fine-tuning add-on (a throwaway cohort)."""
        client = self.cohort([ids] if np.isscalar(ids) else ids, t, "eval", "finetune", vmapped=vmapped)
        self.prepare_eval(client)
        return client

    def upload(self, client: Client) -> dict[str, torch.Tensor]:
        """What a cohort sends: each client's shared tensors (a leading client dimension)."""
        return {k: client.state["model." + k] for k in self.shared}

    @torch.no_grad()
    def write_back(self, client: Client) -> None:
        """The cohort's personal tensors, personal model and state into the store."""
        rows = torch.as_tensor(client.ids, device=self.data.x.device)
        for n, t in self.store.tensors.items():
            src = client.state["model." + n] if n in self.live else client.state[n]
            t.index_copy_(0, rows, src.to(t.dtype))

    def global_model(self):
        """A frozen second model holding the current global state (built once, reloaded per round)."""
        if self._global_module is None:
            self._global_module = copy.deepcopy(self.model).requires_grad_(False).eval()
            self._global_module.load_state_dict(self.fixed | self.global_state, strict=False)
        return self._global_module

    def _refresh_global(self) -> None:
        if self._global_module is not None:
            self._global_module.load_state_dict(self.fixed | self.global_state, strict=False)

    # -- one round -----------------------------------------------------------------------------------
    def train_round(self, t: int) -> float:
        """Local updates of the round's sampled clients, then aggregation. Returns the mean local loss."""
        sampled = self.schedule[t]
        self.global_model()  # built and loaded before any (possibly vmapped) step uses it
        acc = Aggregator(self.global_state)
        losses = []
        for cohort in self.engine.cohorts(self, t, sampled):
            losses.append(np.asarray(self.method.local_update(cohort), dtype=np.float64).reshape(-1))
            self.write_back(cohort)
            if self.global_state:
                acc.add(self.upload(cohort), self.weights(cohort.ids))
        self.bytes_down += nbytes(self.global_state) * len(sampled)
        self.bytes_up += nbytes({k: self.live[k] for k in self.shared}) * len(sampled)
        np.add.at(self.times_sampled, sampled, 1)
        if self.global_state:
            self.global_state = self.method.server_update(self.global_state, acc.mean(self.global_state))
            self._refresh_global()
        losses = np.concatenate(losses) if losses else np.zeros(0)
        return float(np.mean(losses)) if len(losses) else float("nan")

    def weights(self, ids: np.ndarray) -> np.ndarray:
        """Each client's aggregation weight: its train size (samples) or 1 (uniform)."""
        return self.n_train[ids].astype(np.float64) if self.method.weighting == "samples" else np.ones(len(ids))

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self, t: int) -> dict[str, np.ndarray]:
        """Every client's personalized model on its val and test splits: when every client evaluates
        the same model (nothing personal, no personal model, no adapt/predict hook, no fine-tuning)
        all samples go through it in one pass; otherwise the engine scores cohorts of clients."""
        self.global_model()
        if self.same_eval_model():
            return self._evaluate_shared()
        correct, loss = self.engine.score(self, t)
        return evaluate_assembled(correct, loss, self.eval_counts())

    def prepare_eval(self, client: Client) -> None:
        """The evaluated model of a cohort: the method's adapt hook, then the fine-tuning add-on."""
        self.method.adapt(client)
        if self.finetune:
            finetune(client, self.method, **self.finetune)

    def same_eval_model(self) -> bool:
        m = self.method
        return (not self.own["eval"] and m.evaluates == "model" and not self.finetune
                and not {"adapt", "predict"} & set(m.hooks))

    def _evaluate_shared(self) -> dict[str, np.ndarray]:
        K = self.data.num_clients
        idx, seg = self.eval_index()
        model = self.global_model()
        correct, loss = segment_sums(model, self.data.x, self.data.y, idx, seg, 2 * K, self.run.eval_batch_size)
        return evaluate_assembled(correct.view(K, 2).cpu().numpy(), loss.view(K, 2).cpu().numpy(), self.eval_counts())

    def eval_counts(self) -> np.ndarray:
        """(K, 2): each client's val and test sizes. Built once."""
        if getattr(self, "_eval_counts", None) is None:
            self._eval_counts = np.array([[len(c.val), len(c.test)] for c in self.data.clients],
                                         dtype=np.int64).reshape(-1, 2)
        return self._eval_counts

    def eval_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, segment ids): client k's val then test samples, in client order; segment 2k is k's
        val split, 2k + 1 its test split. Built once."""
        if getattr(self, "_eval_cache", None) is None:
            parts, segs = [], []
            for k, c in enumerate(self.data.clients):
                for j, part in enumerate((c.val, c.test)):
                    parts.append(part)
                    segs.append(torch.full((len(part),), 2 * k + j, dtype=torch.int64, device=part.device))
            dev = self.data.x.device
            empty = torch.zeros(0, dtype=torch.int64, device=dev)
            self._eval_cache = (torch.cat(parts).to(dev) if parts else empty,
                                torch.cat(segs).to(dev) if segs else empty)
        return self._eval_cache

    # -- health and checkpoints ------------------------------------------------------------------------
    def finite(self) -> bool:
        """False when any global or personal tensor holds NaN or inf (divergence). One host sync."""
        tensors = [t for t in list(self.global_state.values()) + list(self.store.tensors.values())
                   if t.is_floating_point() and t.numel()]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True

    def state_dict(self) -> dict:
        """Everything a run changes (data, schedule and initial model are rebuilt from the config):
        tensors and plain values only, so it loads with torch.load(weights_only=True)."""
        return {"global_state": dict(self.global_state), "fixed": dict(self.fixed),
                "store": dict(self.store.tensors), "bytes_up": int(self.bytes_up),
                "bytes_down": int(self.bytes_down), "times_sampled": torch.from_numpy(self.times_sampled.copy())}

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
        self._refresh_global()
