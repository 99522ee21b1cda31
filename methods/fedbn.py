"""FedBN (Li et al., "FedBN: Federated Learning on Non-IID Features via Local Batch Normalization",
ICLR 2021).

Difference from FedAvg: every BatchNorm parameter and buffer (weight, bias, running mean/var, batch
count) stays on its client; all other tensors are uploaded and averaged with a plain mean (official
fed_digits.py communication()). BN layers are found by type, not by name. Needs a model with
BatchNorm; without one FedBN would be FedAvg.
Not vectorizable: training updates each client's BN running statistics in place, which a vmapped step
cannot do, so FedBN always runs on engine=sequential (measured with `python -m fedbench.bench`:
0.070 s/round on 20 digits clients with the MLP + BN, every client evaluated every round; the
vectorized methods take 0.012-0.082 s/round there, 0.046-0.43 s/round sequential).
"""
from methods import register
from methods.fedavg import FedAvg


@register
class FedBN(FedAvg):
    name = "fedbn"
    paper = "https://arxiv.org/abs/2102.07623"
    weighting = "uniform"  # official communication(): plain mean (1/K) of the non-BN tensors
    shared = "non_bn"
    personal = "bn"
    needs_batchnorm = True
    vectorizable = False
    why_not_vectorizable = ("its BatchNorm layers update running statistics in place per client, which a "
                            "vmapped step cannot do (engine=sequential)")
