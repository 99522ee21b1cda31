"""FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017): the method interface's defaults (methods/base.py), as they are. Every other method
is written as its difference from it: the whole model is shared, averaged with weights n_k (train
samples), E epochs of SGD on cross-entropy locally, and the global model is what every client
evaluates.
"""
from __future__ import annotations

from methods import register
from methods.base import Method


@register
class FedAvg(Method):
    name = "fedavg"
    paper = "https://arxiv.org/abs/1602.05629"
