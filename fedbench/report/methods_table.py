"""What each compared method shares and keeps, read from its module, not written by hand: a reading
that groups methods ("the methods that keep a personal head") can be checked against this table.

Columns: uploaded and averaged (the class's `shared` and its own `uploads`, with the server's weighting,
or "its own server step" where the method replaces the mean), the server step (the weighted mean, or
the first line of the method's `aggregate`), kept on the client (`personal`, plus a second personal
model), trained locally (`trains`), what a local step does on a minibatch (`per_minibatch`;
every method walks the round's local epochs, method.official=true keeps an official fixed-step schedule
where one exists), evaluated (`evaluates`, the parts evaluation takes from
the global state, the method's own `adapt` step, fine-tuning before evaluation from its yaml's
`ft_epochs`), how a newcomer that never trained gets its model (`newcomer`, unseen_frac:
fedbench.federation.newcomers). Papers and defaults: README's method table.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from fedbench.files import atomic_write

CONF = Path(__file__).resolve().parents[2] / "conf" / "method"


def parts(value) -> str:
    """'backbone', ('head', 'gce') -> 'head, gce'; 'all' -> 'whole model'; 'none' -> 'nothing'."""
    names = [value] if isinstance(value, str) else list(value)
    text = ", ".join({"all": "whole model", "none": "nothing", "non_bn": "all but BatchNorm",
                      "bn": "BatchNorm"}.get(n, n) for n in names)
    return text or "nothing"


def uploaded(cls) -> str:
    """What a sampled client sends: its shared parts and the method's own uploads (client states, model
    parts), and how the server combines them: a weighted mean, or the method's own server step."""
    names = ([] if cls.shared == "none" else [parts(cls.shared)]) + [parts(u) for u in cls.uploads]
    if not names:
        return "nothing"
    how = "its own server step" if "aggregate" in cls.hooks else cls.weighting
    return f"{', '.join(dict.fromkeys(names))} ({how})"


def server_step(cls, name: str) -> str:
    """The server's work on the uploads: the weighted mean (and the method's server_update), or its
    own aggregate (the first line of its docstring)."""
    if "aggregate" in cls.hooks:
        doc = (cls.aggregate.__doc__ or "").strip().splitlines()
        return doc[0].rstrip(".") if doc else f"its own: methods/{name}.py `aggregate`"
    if cls.shared == "none":
        return "none"
    mean = f"mean weighted by {'train samples' if cls.weighting == 'samples' else 'client (uniform)'}"
    return mean + (f", then methods/{name}.py `server_update`" if "server_update" in cls.hooks else "")


def evaluated(cls, ft_epochs: int) -> str:
    if cls.evaluates == "personal_model":
        model = "personal model"
    elif "download" in cls.hooks and cls.shared == "none" and cls.personal == "none":
        model = "the model the server sends the client"
    else:
        model = "global model" if cls.personal == "none" and not cls.personal_model else "client's model"
    steps = []
    if cls.eval_global != "none":
        steps.append(f"{parts(cls.eval_global)} from the global model")
    if "adapt" in cls.hooks:
        steps.append("its own adapt step")
    if ft_epochs:
        steps.append(f"{ft_epochs} epochs of fine-tuning")
    if "predict" in cls.hooks:
        steps.append("its own prediction rule")
    return model + (" (" + "; ".join(steps) + ")" if steps else "")


def newcomer(cls) -> str:
    """The newcomer rule in words (fedbench.federation.newcomers)."""
    from fedbench.federation.newcomers import newcomer_rule, personal_part

    rule = newcomer_rule(cls)
    return {"evaluate": "evaluated as a participant (nothing trained)",
            "finetune": f"fine-tunes {parts(personal_part(cls))} (unseen_epochs)",
            "personal": "personal model from the global, then its local update (unseen_epochs)",
            "scratch": "its local update from the initial model, a participant's mean epochs",
            "welcome": f"its own: {cls.welcomes}"}[rule]


def method_rows(names) -> list[dict]:
    import methods

    rows = []
    for name in sorted(names):
        cls = methods.get(name)
        conf = yaml.safe_load((CONF / f"{name}.yaml").read_text()) or {}
        kept = parts(cls.personal) + (", a personal model" if cls.personal_model else "")
        rows.append({"method": name, "uploaded and averaged": uploaded(cls), "server step": server_step(cls, name),
                     "kept on the client": kept.replace("nothing, ", ""), "trained locally": parts(cls.trains),
                     "per minibatch": cls.per_minibatch,
                     "evaluated": evaluated(cls, int(conf.get("ft_epochs", 0) or 0)), "newcomer": newcomer(cls)})
    # the rows are Markdown table cells: a '|' of a formula (||w - u||^2) would split the cell
    return [{k: v.replace("|", "\\|") for k, v in r.items()} for r in rows]


def write_methods_table(names, path: Path) -> list[Path]:
    """tables/methods.md for the registered methods among `names` (those of the report); [] when none."""
    import methods

    rows = method_rows(set(names) & set(methods.available()))
    if not rows:
        return []
    columns = list(rows[0]) if rows else []
    lines = ["# What each method shares and keeps (read from methods/<name>.py)", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    atomic_write(path, "\n".join(lines) + "\n")
    return [Path(path)]
