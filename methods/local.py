"""Local training only: each client trains its own model on its own data and never communicates.
The lower reference point of pFL (no collaboration). Differs from FedAvg in one thing: nothing is
shared, the whole model stays on the client."""
from methods import register
from methods.fedavg import FedAvg


@register
class Local(FedAvg):
    name = "local"
    paper = ""  # no paper: the no-collaboration reference
    shared = "none"
    personal = "all"
