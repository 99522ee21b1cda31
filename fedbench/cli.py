"""`python -m fedbench [overrides] [-m overrides]`: Hydra entry point.

Hydra's parser wants `-m/--multirun` before the overrides; users write it anywhere (the product
card's own example puts it in the middle), so the flag is moved to the front first.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from fedbench.errors import FedbenchError

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
MULTIRUN_FLAGS = ("-m", "--multirun")


def normalize_argv(args: list[str]) -> list[str]:
    flags = [a for a in args if a in MULTIRUN_FLAGS]
    return flags[:1] + [a for a in args if a not in MULTIRUN_FLAGS]


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig):
    from fedbench.run import run

    try:
        return run(cfg)
    except FedbenchError as exc:
        print(f"fedbench: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def main() -> None:
    sys.argv = [sys.argv[0]] + normalize_argv(sys.argv[1:])
    hydra_main()
