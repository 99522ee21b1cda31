"""FedBABU (Oh et al., "FedBABU: Toward Enhanced Representation for Federated Image Classification",
ICLR 2022).

Difference from FedAvg: the head is frozen at its random initialization, the same on every client, for
the whole federation (neither shared nor personal: the harness keeps it fixed), so local training
updates and uploads only the body, with the lr x 0.1 from 50% and again from 75% of the rounds
(official main_fed.py). Personalization is fine-tuning the whole model before evaluation: the harness
add-on, configured by the `ft_*` keys of conf/method/fedbabu.yaml.
"""
from methods import register
from methods.fedavg import FedAvg


@register
class FedBABU(FedAvg):
    name = "fedbabu"
    ranges = {"lr": "(0, inf) or null", "momentum": "[0, 1) or null"}  # checked before any work
    shared = "backbone"

    def lr(self, client) -> float:
        """Decayed x 0.1 after rounds R//2 and 3R//4 (official: `if (iter + 1) in [R//2, 3R//4]`)."""
        rounds = client.hp.rounds
        decays = {d for d in (rounds // 2, 3 * rounds // 4) if d > 0}
        return (self.hp.lr or client.hp.lr) * 0.1 ** sum(client.round >= d for d in decays)

    def local_update(self, client) -> float:
        return client.sgd(lambda x, y: self.loss(client, x, y), client.model.parameters_of("backbone"),
                          lr=self.lr(client), momentum=self.hp.momentum)
