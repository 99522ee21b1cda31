"""FedBABU (Oh et al., "FedBABU: Toward Enhanced Representation for Federated Image Classification",
ICLR 2022).

Difference from FedAvg: the head is frozen at its random initialization, the same on every client, for
the whole federation (neither shared nor personal: the harness keeps it fixed), so local training
updates and uploads only the body. Personalization is fine-tuning the whole model before evaluation:
the harness add-on, configured by the `ft_*` keys of conf/method/fedbabu.yaml (5 epochs at the run's
final lr, as the official analysis.ipynb fine-tunes at the final training lr).
Optimizer: the run's, like every method. `method.official=true` trains with the official code's
(lr 0.1, momentum 0.9, x0.1 after rounds R//2 and 3R//4: run_fedbabu.sh, main_fed.py).
"""
from methods import register
from methods.fedavg import FedAvg


@register
class FedBABU(FedAvg):
    name = "fedbabu"
    # newcomer: its evaluation fine-tunes the global model on the newcomer's train split (the paper's personalization)
    newcomer = "evaluate"
    paper = "https://arxiv.org/abs/2106.06042"
    weighting = "uniform"  # main_fed.py: summed uploads divided by m (number of sampled clients)
    shared = "backbone"
    trains = "backbone"
