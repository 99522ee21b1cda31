"""What each top-level, method-harness and model config key may hold (specs in fedbench.config.specs'
language), so that fedbench.config can check a whole config before any data is loaded. Dataset and
partition keys, and the static facts of each dataset, are in their records
(fedbench.data.datasets, fedbench.data.partitions)."""
from __future__ import annotations

from typing import Any

from fedbench.engines import CHOICES as ENGINE_CHOICES

# Top-level keys (and data.*): their specs. Keys absent from the config are not checked.
TOP_SPECS: dict[str, Any] = {
    "seed": "int [0, inf)",
    "rounds": "int [1, inf)",
    "num_clients": "int [1, inf)",
    "join_ratio": "(0, 1]",
    "local_epochs": "int [1, inf)",
    "batch_size": "int [1, inf)",
    "lr": "(0, inf)",
    "momentum": "[0, 1)",
    "weight_decay": "[0, inf)",
    "lr_schedule": ("constant", "step"),
    "lr_milestones": "list of (0, 1)",
    "lr_gamma": "(0, inf)",
    "eval_every": "int [1, inf)",
    "eval_final_k": "int [1, inf)",
    "threads": "auto or int [1, inf)",
    "engine": ENGINE_CHOICES,
    "progress": "bool",
    "checkpoint_every": "int [0, inf)",
    "deterministic": "bool",
    "init_jitter": "[0, 1)",
    "unseen_frac": "[0, 1)",
    "unseen_epochs": "int [1, inf)",
    "rerun": "bool",
    "code_change": ("rerun", "reuse", "refuse"),
    "results_dir": "str",
    "data.root": "str",
    "data.download": "bool",
    "data.verify": "bool",
    "data.val_frac": "[0, 1)",
    "data.test_frac": "(0, 1)",
    "data.rotations": "int [1, inf)",  # the type; fedbench.config allows 1, 2 or 4 and says what they mean
}

def or_null(spec) -> str:
    """The spec string that also allows null (a tuple of words becomes 'a or b or null')."""
    return f"{spec if isinstance(spec, str) else ' or '.join(spec)} or null"



