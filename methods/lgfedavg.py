"""LG-FedAvg (Liang et al., "Think Locally, Act Globally: Federated Learning with Local and Global
Representations", arXiv 2001.01523, NeurIPS-W 2019).

Difference from FedAvg: the paper's split. The lower layers (the backbone, a local representation)
never leave the client; only the top layers (the head, `model.head_layers` blocks) are uploaded,
averaged with a plain mean and broadcast to every client (official main_lg.py). Local training updates
both jointly. This is the inverse of FedPer; FL-bench (and the official CIFAR code's key order) share
the bottom layers instead.
"""
from methods import register
from methods.fedavg import FedAvg


@register
class LGFedAvg(FedAvg):
    name = "lgfedavg"
    paper = "https://arxiv.org/abs/2001.01523"
    weighting = "uniform"  # official main_lg.py: plain mean of the global layers over the sampled clients
    shared = "head"
    personal = "backbone"
