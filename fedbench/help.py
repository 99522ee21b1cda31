"""`python -m fedbench --help`: what the tool does, its companion commands, and every config group with
one line per option (its yaml's first comment line; a method's, the paper its module names), read from
conf/ and methods/ so it never goes stale. Hydra's own help stays at --hydra-help."""
from __future__ import annotations

import textwrap
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = (("method", "the method (a module of methods/ and its yaml)"), ("dataset", "the data"),
          ("partition", "how the data is split across clients"), ("model", "the network"),
          ("experiment", "presets: a whole setting in one word, applied last"),
          ("logger", "experiment trackers (several: logger=[tensorboard,mlflow])"),
          ("hydra/launcher", "where a sweep (-m) runs"))

HEAD = """\
fedbench: personalized federated learning (pFL) benchmarks. One run trains and evaluates a method's
personalized models over simulated clients and writes results/runs/<...>/ (config, metrics, summary);
-m sweeps the comma-separated values, locally or on Slurm.

  python -m fedbench                                   FedBSD on digits, about 10 s on a CPU
  python -m fedbench method=fedavg experiment=digits_skew
  python -m fedbench -m method=fedavg,fedbsd seed=0,1,2 hydra/launcher=local

Companion commands (each has --help):
  python -m fedbench.report     tables (Markdown, LaTeX) and plots of the finished runs (--select val)
  python -m fedbench.tune       every method searched alike, chosen on validation, reported on other seeds
  python -m fedbench.reproduce  rerun rows of a summary.csv and check their numbers
  python -m fedbench.publish    regenerate the published comparison under results/published/

Keys: seed, rounds, num_clients, join_ratio, local_epochs, batch_size, lr, momentum, weight_decay,
eval_every, device (auto|cpu|cuda), threads, results_dir, rerun, code_change, method.<key>, ...
(python -m fedbench --cfg job prints them all with their values).
"""


def describe(path: Path) -> str:
    """The first sentence of a yaml's first comment block (package directives skipped; '' when none)."""
    block = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and "@package" not in line:
            block.append(line.lstrip("# ").strip())
        elif block:
            break
    about = " ".join(block)
    end = about.find(". ", 40)
    return about[:end + 1] if 0 < end < 300 else about if len(about) <= 300 else about[:299] + "…"


def method_line(name: str) -> str:
    """The paper a method's module names: its docstring's first sentence, to the first closing
    parenthesis."""
    import sys

    import methods

    doc = " ".join((sys.modules[methods.get(name).__module__].__doc__ or "").split())
    depth = 0
    for i, ch in enumerate(doc[:300]):   # to the parenthesis that closes the first one
        depth += (ch == "(") - (ch == ")")
        if ch == ")" and depth == 0:
            return doc[:i + 1]
    return doc.split(". ")[0][:160]


def text(width: int = 100) -> str:
    import methods

    lines = [HEAD, "Groups (group=option):"]
    for group, what in GROUPS:
        lines.append(f"  {group}: {what}")
        folder = CONF / group
        options = sorted(methods.available()) if group == "method" else sorted(p.stem for p in folder.glob("*.yaml"))
        for option in options:
            about = method_line(option) if group == "method" else describe(folder / f"{option}.yaml")
            lines += textwrap.wrap(about, width, initial_indent=f"    {option:<22}", subsequent_indent=" " * 26) \
                or [f"    {option}"]
    lines += ["", "Hydra's own help: python -m fedbench --hydra-help"]
    return "\n".join(lines) + "\n"
