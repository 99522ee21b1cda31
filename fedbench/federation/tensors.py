"""The federation's tensors: the global state, each client's own tensors (a stacked store), and which
model tensor is which (shared, personal, fixed), read from what the method declares."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from fedbench.federation.store import ClientStore

PERSONAL = "personal_model."


class FederationTensors:
    """`global_state` (the shared tensors, the server's), `fixed` (neither shared nor personal: frozen
    at the initial value on every client, e.g. a head fixed at init) and `store` (each client's
    personal tensors, its personal model and its method state). A personal tensor that is also shared
    is the client's copy once it has trained (`trained`), the global one before; `own[phase]` are the
    personal tensors a phase (train, eval) takes from the client's copy."""

    def __init__(self, model: nn.Module, method, num_clients: int, federation_size: int | None = None):
        """`num_clients` rows; `federation_size`: the participants a client state is sized for (its
        client_state(model, num_clients) argument) when these rows are others (newcomers)."""
        self.model = model
        self.live = dict(model.state_dict(keep_vars=True))
        self.shared = model.keys(method.shared)
        self.personal = model.keys(method.personal)
        parts, self.upload_states = [], []
        for name in method.uploads:   # model parts beyond the shared ones, or client states
            try:
                parts += model.keys(name)
            except ValueError:
                self.upload_states.append(name)
        self.upload_keys = [k for k in self.live if k in set(self.shared) | set(parts)]
        self.own = {"train": [k for k in self.personal if k not in set(model.keys(method.train_global))],
                    "eval": [k for k in self.personal if k not in set(model.keys(method.eval_global))]}
        self.global_state = {k: self.live[k].detach().clone() for k in self.shared}
        self.fixed = {k: self.live[k].detach().clone() for k in self.live
                      if k not in self.global_state and k not in self.personal}
        self.personal_module = copy.deepcopy(model) if method.personal_model else None
        init = {k: self.live[k] for k in self.personal}
        if self.personal_module is not None:  # the personal model starts as a copy of the initial model
            init |= {PERSONAL + k: v for k, v in model.state_dict().items()}
        init |= method.client_state(model, num_clients if federation_size is None else federation_size)
        self.store = ClientStore(num_clients, init)
        self.global_module = copy.deepcopy(model).requires_grad_(False).eval()
        self.refresh_global()

    def refresh_global(self) -> None:
        """Load the current global state into the frozen global model."""
        self.global_module.load_state_dict(self.fixed | self.global_state, strict=False)

    @torch.no_grad()
    def load(self, ids: np.ndarray, trained: np.ndarray, phase: str) -> dict[str, torch.Tensor]:
        """Working copies (a leading client dimension) of clients `ids` as `phase` loads them: the
        global (or fixed) value of every model tensor, then the client's own copy of each personal
        tensor the phase takes from it (of a shared one only where `trained`), its personal model and
        state."""
        rows = torch.as_tensor(ids, device=next(iter(self.live.values())).device)
        base = self.fixed | self.global_state
        trained = torch.as_tensor(trained, device=rows.device)
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
        return state

    @torch.no_grad()
    def write_back(self, ids: np.ndarray, state: dict[str, torch.Tensor]) -> None:
        """A cohort's personal tensors, personal model and state into the store."""
        rows = torch.as_tensor(ids, device=next(iter(self.live.values())).device)
        for n, t in self.store.tensors.items():
            src = state["model." + n] if n in self.live else state[n]
            t.index_copy_(0, rows, src.to(t.dtype))

    def upload(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What a cohort sends: each client's shared tensors and declared uploads (a leading client
        dimension; model tensors by their key, client states by their name)."""
        return {k: state["model." + k] for k in self.upload_keys} | {n: state[n] for n in self.upload_states}

    def finite(self) -> bool:
        """False when any global or personal tensor holds NaN or inf (divergence). One host sync."""
        tensors = [t for t in list(self.global_state.values()) + list(self.store.tensors.values())
                   if t.is_floating_point() and t.numel()]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True

    def state_dict(self) -> dict:
        return {"global_state": dict(self.global_state), "fixed": dict(self.fixed), "store": dict(self.store.tensors)}

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
        self.refresh_global()
