"""Weights & Biases: one W&B run per fedbench run (wandb.init / log / finish), its local files under
<results_dir>/wandb/.

`logger.wandb.mode=auto` (the default) runs online only when an API key is configured
(WANDB_API_KEY, or `wandb login`'s entry in ~/.netrc) and offline otherwise, so nothing needs the
network; WANDB_MODE, when set, decides instead. Offline runs are uploaded later with `wandb sync`.
`logger.wandb.project` and `logger.wandb.entity` say where the run goes.

The run is named <method>/<setting>/seed<seed>, grouped by setting, its job type is the method; the
flat config is its config; each metrics.csv column is logged under its name with the round as the
step; at the end the headline numbers, status and run facts go to the run summary, and the run
finishes with exit code 0 (complete) or 1 (diverged, failed, interrupted).

Resume: the run id is kept in <run dir>/tracking.json; a resumed run calls wandb.init with that id
and resume="allow" (offline: a new segment of the same run, which `wandb sync` uploads in order),
and skips the rounds an earlier segment finished logging (recorded when that segment finished). A
segment killed with SIGKILL keeps only what W&B had flushed (every 15 s), so the resumed run logs
again from its checkpoint (an online W&B run ignores a step below its current one).
"""
from __future__ import annotations

import netrc
import os
import secrets
import sys
from urllib.parse import urlparse

from omegaconf import DictConfig

from fedbench.tracking import state
from fedbench.tracking.identity import RunIdentity, facts, headline, metrics_of


def api_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str | None:
    """online/offline as asked; auto: WANDB_MODE if set (None lets wandb read it), else online
    only with an API key."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return None
    return "online" if api_key_configured() else "offline"


class Tracker:
    def __init__(self, settings: DictConfig, run: RunIdentity, resumed_from_round: int) -> None:
        import wandb

        kept = state.get(run.run_dir, "wandb") if resumed_from_round else {}
        self.run_dir = run.run_dir
        self.id = kept.get("id") or secrets.token_hex(4)
        self.logged = int(kept.get("logged", 0)) if kept.get("id") else 0
        self.step = max(self.logged, resumed_from_round)
        mode = resolve_mode(str(settings.mode))
        run.results_dir.mkdir(parents=True, exist_ok=True)
        self.wb = wandb.init(project=str(settings.project), entity=settings.entity, id=self.id, name=run.name,
                             group=run.group, job_type=run.method,
                             tags=[run.tags[k] for k in ("method", "dataset", "partition")],
                             dir=str(run.results_dir), mode=mode, resume="allow",
                             settings=wandb.Settings(console="off", silent=True))
        state.put(run.run_dir, "wandb", {"id": self.id, "logged": self.logged})
        if self.wb.offline:
            print(f"fedbench: W&B run {self.id} is offline; upload it later with: wandb sync "
                  f"{self.wb.settings.sync_dir}", file=sys.stderr)

    def log_params(self, params: dict) -> None:
        self.wb.config.update(params, allow_val_change=True)

    def log_row(self, step: int, row: dict) -> None:
        if step <= self.logged:
            return   # an earlier segment finished logging this round (the same numbers)
        self.wb.log(metrics_of(row), step=step)
        self.step = step

    def finish(self, summary: dict) -> None:
        self.wb.summary.update(headline(summary) | facts(summary))
        self._end(0 if summary.get("status") == "complete" else 1)

    def _end(self, exit_code: int) -> None:
        run, self.wb = self.wb, None
        if run is not None:
            run.finish(exit_code=exit_code)
            state.put(self.run_dir, "wandb", {"id": self.id, "logged": max(self.step, self.logged)})

    def close(self) -> None:
        self._end(1)
