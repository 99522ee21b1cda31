"""A setting's name, fixed by the setting itself, never by which other runs share the results directory,
so table headers and file names are the same in every report that holds it:

  label   the preset's name when every run of the setting names the same `experiment=` preset, else
          `<dataset> <partition>(<its parameters>) N=<clients>`; then every key in which the setting
          differs from what that preset (or the dataset and partition alone) composes to, e.g.
          `digits_skew rounds=50`
          (when that cannot be composed any more, the setting's digest instead: `[3f2a1b]`)
  stem    a short file-name stem: the preset's name when nothing differs from it, else the dataset and
          partition with the first 6 characters of the setting's digest (`digits-dirichlet-3f2a1b`)
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

SHOWN = ("dataset.name", "partition.name", "num_clients")   # already in the base name


@lru_cache(maxsize=None)
def reference(overrides: tuple) -> dict | None:
    """The flat setting the overrides compose to (None when they no longer compose: an old preset)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from fedbench.config import CONF_DIR
    from fedbench.report.collect import flatten, setting_of
    from fedbench.rundir import scientific_config

    try:
        if GlobalHydra.instance().is_initialized():   # inside a Hydra app (a sweep's report, a tune): its conf
            cfg = compose(config_name="config", overrides=list(overrides))
        else:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="fedbench.report"):
                cfg = compose(config_name="config", overrides=list(overrides))
        return setting_of(flatten(scientific_config(cfg)))
    except Exception:  # noqa: BLE001 -- any composition failure: the label then spells the base only
        return None


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def differences(setting: dict, overrides: tuple, shown=SHOWN) -> dict:
    """The keys (not those `shown` in the base name) in which `setting` differs from what `overrides`
    compose to."""
    ref = reference(overrides)
    if ref is None:
        return {}
    same = lambda a, b: json.dumps(a, default=str) == json.dumps(b, default=str)  # noqa: E731
    return {k: v for k, v in sorted(setting.items()) if not k.startswith(shown) and v is not None
            and not same(v, ref.get(k))}


def setting_names(setting: dict, preset: str | None, key: str) -> tuple[str, str, str]:
    """(label, detail, stem) of a setting (see the module docstring); detail spells the base out."""
    part = {k.removeprefix("partition."): v for k, v in setting.items()
            if k.startswith("partition.") and k != "partition.name"}
    dataset, partition = setting.get("dataset.name"), setting.get("partition.name")
    spelled = f"{dataset} {partition}" + (f"({', '.join(f'{k}={_text(v)}' for k, v in part.items())})" if part else "")
    spelled += f" N={setting.get('num_clients')}"
    if preset:
        extra = differences(setting, (f"experiment={preset}",), ())
    else:
        extra = differences(setting, (f"dataset={dataset}", f"partition={partition}"), SHOWN + ("partition.",))
    tail = [f"{k}={_text(v)}" for k, v in extra.items()]
    if reference((f"experiment={preset}",) if preset else (f"dataset={dataset}", f"partition={partition}")) is None:
        tail.append(f"[{key[:6]}]")   # nothing to compare with (a preset since removed): its digest tells it apart
    label = " ".join([preset or spelled, *tail])
    stem = preset if preset and not extra else re.sub(r"[^A-Za-z0-9.-]+", "-", f"{dataset}-{partition}") + f"-{key[:6]}"
    return label, " ".join([spelled, *tail]), stem
