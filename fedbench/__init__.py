"""fedbench: a benchmark suite for personalized federated learning. The stages of a run, in order,
and the module that holds each:

  config        fedbench.cli (python -m fedbench, every job checked up front), fedbench.config (one
                ConfigError line per bad value; keys.py what each key may hold, specs.py the spec
                language, method_checks.py the method group), fedbench.optimizer (the run's optimizer,
                one for every method), fedbench.runtime (device, threads, determinism)
  data          fedbench.data: datasets/ and partitions/ (registries: one record per dataset or
                partition), splits.py (each client's train/val/test), cache.py (partitions on disk),
                federated.py (data -> partition -> split -> tensors on the device)
  model         fedbench.models (backbone + head, named parts)
  methods       methods/ (one module per method, the difference from FedAvg; declarations and hooks
                in methods/fedavg.py), fedbench.toolkit (what methods share: losses, parameter-space
                arithmetic, fine-tuning before evaluation)
  round         fedbench.federation (the round, written once: sampling, cohorts, local update,
                upload, aggregation, server update, bytes, evaluation), fedbench.client (what a method
                sees of its clients: the training primitives), fedbench.batches (data order and
                batch plans), fedbench.sgd (torch.optim.SGD's arithmetic), fedbench.store (per-client
                tensors), fedbench.run_settings (the run settings a client reads)
  engines       fedbench.engines: sequential.py (client by client), vmap.py (all clients of a round
                in one vectorized call per step); auto picks one
  evaluation    fedbench.evaluation (per-client accuracy, the protocol's summary numbers)
  run           fedbench.run (start or resume, the round loop, finish), fedbench.checkpoint,
                fedbench.runlock (one writer per run directory), fedbench.results (run directories,
                atomic writes, the config hash), fedbench.completion (complete means the files agree),
                fedbench.sweep_dirs, fedbench.tracking (TensorBoard, MLflow, W&B), fedbench.callbacks
  report        fedbench.report (python -m fedbench.report: tables, plots, --select val),
                fedbench.tune (python -m fedbench.tune: the equal-budget tuning sweep)
  performance   fedbench.bench (python -m fedbench.bench: the harness against plain PyTorch, every
                method on both engines)
Vocabulary: the *run config* is the whole composed config (cfg); a *method config* is its `method`
group (a method's `self.hp`); a client's second model (Ditto's, pFedMe's, APFL's) is its *personal
model*; a method's *personal parts* are the parts of its model each client keeps.
"""
