"""A second, personal model per client, for methods that train one beside the global model (Ditto's
v, pFedMe's theta, APFL's v): its state lives in the client store under a key prefix, is read with
`client.aux_model(prefix)` and written back with `client.save_aux(prefix, model)`, and it is what the
client evaluates. Mix it into a FedAvg subclass: `class Ditto(PersonalModel, FedAvg)`.
"""
from __future__ import annotations

import torch


class PersonalModel:
    prefix = "v."

    def client_state(self, model) -> dict[str, torch.Tensor]:
        """The personal model starts as a copy of the initial model (the store copies the tensors)."""
        return {self.prefix + k: v for k, v in model.state_dict().items()}

    def eval_model(self, client):
        return client.aux_model(self.prefix)
