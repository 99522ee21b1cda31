"""The four runners of `python -m fedbench.bench` (harness, floor, typical, vmap) and the fixed
setting they share; each does round t: local training, aggregation, evaluation when due."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

SETTING = ["dataset=digits", "partition=dirichlet", "partition.alpha=0.1", "num_clients=20", "join_ratio=1.0",
           "batch_size=10", "local_epochs=1", "lr=0.05", "eval_every=5", "seed=0"]
# the CNN on real images: Fashion-MNIST (14,000 images, stratified) with its default model, PFLlib's FedAvgCNN
CNN_SETTING = ["dataset=fmnist", "dataset.samples=14000", "partition=dirichlet", "partition.alpha=0.1",
               "num_clients=20", "join_ratio=1.0", "batch_size=10", "local_epochs=1", "lr=0.005", "eval_every=1",
               "seed=0"]


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
        from fedbench.run import build_federation, build_method

        model = self.model()
        return build_federation(self.cfg, self.data, model, build_method(self.cfg, model), engine)


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
