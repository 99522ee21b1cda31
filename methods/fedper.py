"""FedPer (Arivazhagan et al., "Federated Learning with Personalization Layers", arXiv 2019).

Difference from FedAvg: the base (backbone) is shared and averaged; the personalization layers
(the head) never leave the client. Local training updates both jointly."""
from methods import register
from methods.fedavg import FedAvg


@register
class FedPer(FedAvg):
    name = "fedper"
    paper = "https://arxiv.org/abs/1912.00818"
    shared = "backbone"
    personal = "head"
