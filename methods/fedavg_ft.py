"""FedAvg + fine-tuning (FedAvg-FT): the pFL baseline "train one global model, adapt it locally", as
evaluated in FedBABU (Oh et al., ICLR 2022, official analysis.ipynb) and Ditto (Li et al., ICML 2021).

Difference from FedAvg: none in training. Before evaluation every client fine-tunes the global model
on its own train split and tests the result; the fine-tuned weights are thrown away (nothing is
uploaded or kept for the next round). This is the harness add-on fedbench.federation.finetune, switched on by the
`ft_*` keys of conf/method/fedavg_ft.yaml (FedBABU protocol: whole model, 5 epochs, lr 1e-3,
momentum 0.9, batch 50); `method.ft_epochs=0` is FedAvg.
"""
from methods import register
from methods.fedavg import FedAvg


@register
class FedAvgFT(FedAvg):
    name = "fedavg_ft"
    newcomer = "evaluate"  # its evaluation fine-tunes the global model on the newcomer's train split (FedBABU protocol)
    paper = "https://arxiv.org/abs/2106.06042"  # its fine-tuning protocol: FedBABU's
    weighting = "samples"  # training is exactly FedAvg: n_k-weighted mean (McMahan et al. 2017)
