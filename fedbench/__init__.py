"""fedbench: a benchmark suite for personalized federated learning. The stages of a run, in order,
and the module that holds each; each layer imports only the layers below it (tests/test_layers.py):

  entry         fedbench.cli (python -m fedbench, every job checked up front), fedbench.callbacks (a
                sweep's report), fedbench.sweep_dirs (jobs of one sweep never share a run directory)
  run           fedbench.run (start or resume, the round loop, finish; builds the federation),
                fedbench.execution (device, threads, determinism), fedbench.tracking (TensorBoard,
                MLflow, W&B)
  run directory fedbench.rundir: layout.py (where a run writes and its file names), lock.py (one
                writer per run directory), checkpoint.py, completion.py (complete means the files agree)
  config        fedbench.config (one ConfigError line per bad value): keys.py (what each key may
                hold), specs.py (the spec language), method_parts.py (a method config in parts),
                method_checks.py (the method group); fedbench.tracking.loggers (the logger group)
  round         fedbench.federation: round.py (the round, written once), server.py (a method's server
                side: uploads, server state, per-client downloads), tensors.py (global and per-client
                tensors), cohort.py (clients stepped together: the training primitives a method uses;
                cohort_data.py, its data streams and batches), client_view.py (one client inside a
                step: what a loss sees), evaluator.py (the one reduction), finetune.py (fine-tuning
                before evaluation), compute.py, aggregation.py, batches.py, sgd.py, store.py, training.py
  engines       fedbench.engines: sequential.py (client by client), vmap.py (a cohort per vectorized
                call); choose_engine picks one. Engines see cohorts, never the federation.
  methods       methods/ (one module per method, the difference from FedAvg; declarations and hooks
                in methods/base.py), fedbench.toolkit (what methods share: losses, parameter-space
                arithmetic, models as flat vectors)
  data          fedbench.data: datasets/ and partitions/ (registries: one record per dataset or
                partition), params.py (their parameter checks), splits.py (each client's
                train/val/test), cache.py (partitions on disk), federated.py (data -> partition ->
                split -> tensors on the device), types.py
  model         fedbench.models (backbone + head, named parts; a registry of architectures, one module each)
  basics        fedbench.metrics (the protocol's numbers: metrics rows, headline, compute fields),
                fedbench.optimizer (the run's optimizer, one for every method), fedbench.code (the code
                a run ran), fedbench.registry (records by name), fedbench.files (atomic writes),
                fedbench.seeding (one seed, separate streams), fedbench.errors
The tools above the stages (they read runs, they are not imported by them):
  report        fedbench.report (python -m fedbench.report: tables, plots, --select val),
                fedbench.tune and fedbench.tuning (python -m fedbench.tune: every method searched alike),
                fedbench.reproduce (rerun published rows),
                fedbench.publish (python -m fedbench.publish: the committed comparison)
  performance   fedbench.bench (python -m fedbench.bench: the harness against plain PyTorch, every
                method on both engines)
Vocabulary: the *run config* is the whole composed config (cfg); a *method config* is its `method`
group, whose own keys are a method's `self.hp`; a *cohort* is clients stepped together (a method's
`local_update(cohort)`), a *client view* one client inside a step (a method's `loss(client, ...)`); a
client's second model (Ditto's, pFedMe's, APFL's) is its *personal model*; a method's *personal
parts* are the parts of its model each client keeps.
"""
