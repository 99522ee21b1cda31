"""The server side of a method, open (fedbench.federation.server): the server step sees every sampled
client's upload with its id and weight, keeps declared server state that survives a resume, and hands
clients downloads of their own, with the bytes counted both ways. FedAvgM (server momentum, Hsu et al.
2019), the README's example, is written here in a dozen lines; kept on `self` instead of in the server
state, its momentum is lost on resume, and the resume check catches it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fedbench.federation.store import nbytes
from methods.fedavg import FedAvg
from tests.conftest import make_federation, tiny_data
from tests.methods.spies import record_uploads
from tests.test_resume import check_resume

SIZES = [30, 12, 7, 21]


class FedAvgM(FedAvg):
    """FedAvgM (Hsu et al., 2019): the server steps with momentum on the mean update."""
    name = "fedavgm_example"

    def server_state(self, model, num_clients: int):
        return {f"v.{k}": torch.zeros_like(p) for k, p in model.named_parameters()}   # buffers: the mean

    def aggregate(self, server, uploads):
        mean, new = uploads.mean(server.global_state), {}
        for k, x in server.global_state.items():
            if f"v.{k}" in server.state:   # v <- 0.9 v + (x - mean); x <- x - v
                server.state[f"v.{k}"] = 0.9 * server.state[f"v.{k}"] + (x - mean[k])
                new[k] = x - server.state[f"v.{k}"]
            else:
                new[k] = mean[k]
        server.global_state = new


class MomentumOnSelf(FedAvg):
    """The same, with its momentum kept on the method object: not in any checkpoint."""
    name = "fedavgm_on_self"

    def aggregate(self, server, uploads):
        mean, old = uploads.mean(server.global_state), getattr(self, "v", {})
        self.v = {k: 0.9 * old.get(k, 0) + (x - mean[k]) for k, x in server.global_state.items()
                  if x.is_floating_point() and "running" not in k}
        server.global_state = {k: x - self.v[k] if k in self.v else mean[k] for k, x in server.global_state.items()}


def test_declared_server_state_survives_a_resume_and_state_kept_elsewhere_does_not():
    check_resume(FedAvgM, {})
    with pytest.raises(AssertionError):
        check_resume(MomentumOnSelf, {})


class Echo(FedAvg):
    """A server step that reads each upload and sends each client its own download."""
    name = "echo_example"
    uploads = ("tag",)

    def client_state(self, model, num_clients: int):
        return {"tag": torch.zeros(3), "got": torch.zeros(3)}

    def local_update(self, cohort):
        cohort.state["tag"].copy_(torch.as_tensor(cohort.ids, dtype=torch.float32).view(-1, 1).expand(-1, 3))
        return super().local_update(cohort)

    def aggregate(self, server, uploads):
        self.seen = (uploads.ids.copy(), uploads.weights.copy(), uploads.tensors["tag"].clone())
        server.send(uploads.ids, {"got": 2 * uploads.tensors["tag"]})
        super().aggregate(server, uploads)

    def download(self, server, ids, phase):
        return {"hello": torch.ones(len(ids), 5)}


def test_the_server_step_sees_each_upload_with_its_id_and_weight_and_sends_per_client():
    fed = make_federation(Echo, rounds=2, join_ratio=0.5, data=tiny_data(train_sizes=SIZES))
    uploads = record_uploads(fed)
    fed.train_round(0)
    ids, weights, tags = fed.method.seen
    assert list(ids) == sorted(fed.schedule[0]) and list(weights) == [SIZES[k] for k in ids]
    assert torch.equal(tags[:, 0], torch.as_tensor(ids, dtype=torch.float32))   # stacked in id order
    got = fed.tensors.store.tensors["got"]
    assert torch.equal(got[ids], 2 * tags) and not got[np.setdiff1d(np.arange(4), ids)].any()
    model_bytes = nbytes(fed.global_state)
    per_client = {k: v for k, v in uploads[0][1].items()}
    assert fed.bytes_up == len(ids) * nbytes(per_client) and "tag" in per_client        # its declared upload too
    assert fed.bytes_down == len(ids) * (model_bytes + 5 * 4) + nbytes({"got": 2 * tags})   # global, download, send
