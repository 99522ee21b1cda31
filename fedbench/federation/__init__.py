"""The round and what it is made of, below run.py and above the engines:

  round.py        Federation: the round, written once (sampling, cohorts, local update, write back,
                  upload, aggregation, server update, bytes, evaluation)
  tensors.py      FederationTensors: the global state, each client's stored tensors, which are shared,
                  personal or fixed
  cohort.py       Cohort: clients stepped together, with the training primitives a method uses
                  (sgd, grad); CohortSetup: what every cohort is built with
  cohort_data.py  CohortData, Cohort's base: each client's data stream, batches, minibatches, and
                  sub-cohorts of some rows (rows, update_rows)
  client_view.py  ClientView: ONE client inside one step, what a method's loss sees; StepModules
  model_handle.py ModelHandle: a cohort's model or personal model, by name and part
  evaluator.py    Evaluator: the evaluation layout, per-client counts and the one reduction
  finetune.py     the fine-tuning add-on before evaluation (method.ft_*)
  aggregation.py  the sampling schedule and the weighted sums of uploads
  batches.py      data order and batch plans; sgd.py torch.optim.SGD's arithmetic; store.py stacked
                  per-client tensors; training.py the training settings a cohort reads
"""
from fedbench.federation.aggregation import clients_per_round, sampling_schedule
from fedbench.federation.round import Federation

__all__ = ["Federation", "clients_per_round", "sampling_schedule"]
