"""Read back what the trackers wrote, each with its own library: TensorBoard's EventAccumulator,
MLflow's client, and W&B's record protobufs (wandb.proto) for an offline run's .wandb file."""
from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import pandas as pd
import pytest

from fedbench.tracking import EXTRA, is_installed


def need(*loggers: str) -> None:
    """Skip (with the install command) where a tracker's package is missing; under CI, which installs
    the tracking extra, fail instead."""
    missing = [name for name in loggers if not is_installed(name)]
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI installs the tracking extra, but {', '.join(missing)} is missing")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed ({EXTRA})")


def metrics(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv")


# -- TensorBoard -----------------------------------------------------------------------------------
def tb_events(run: Path, path: Path | None = None):
    """An EventAccumulator over the run's tensorboard/ directory (or one event file), loaded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path or run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def tb_scalars(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def tb_hparams(acc) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def tb_text(acc, tag: str) -> str:
    return acc.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0].decode()


# -- MLflow ----------------------------------------------------------------------------------------
def mlflow_client(results: Path):
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=(Path(results) / "mlruns").as_uri())


def mlflow_runs(results: Path, experiment: str = "fedbench") -> list:
    client = mlflow_client(results)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def mlflow_history(results: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in mlflow_client(results).get_metric_history(run_id, key))


# -- W&B -------------------------------------------------------------------------------------------
def offline_wandb(monkeypatch, tmp: Path) -> None:
    """No API key anywhere (so logger.wandb.mode=auto goes offline), W&B's own dirs under `tmp`."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp / var.lower()))
    (tmp / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp / "netrc"))


BLOCK, HEADER = 32768, 7   # the .wandb file: a 7-byte ":W&B" header, then LevelDB-log records


def wandb_records(path: Path) -> list:
    """The wandb.proto Record messages of one offline run's .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", data[:HEADER]
    records, pos, parts = [], HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:
            pos += BLOCK - pos % BLOCK   # a block's tail too short for a record header is padding
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:
            break
        parts += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):   # FULL, or LAST of a FIRST/MIDDLE/LAST chain
            record = pb.Record()
            record.ParseFromString(parts)
            records.append(record)
            parts = b""
    return records


def wandb_id(run: Path) -> str:
    return json.loads((Path(run) / "tracking.json").read_text())["wandb"]["id"]


def wandb_segments(results: Path, run_id: str) -> list[list]:
    """Every offline segment of W&B run `run_id` (one per start or resume), oldest first: W&B names
    them offline-run-<time>-<id>, with -1, -2, ... appended when one started in the same second."""
    name = re.compile(rf"offline-run-(\d+_\d+)-{re.escape(run_id)}(?:-(\d+))?")
    found = [(m.group(1), int(m.group(2) or 0), f) for f in Path(results, "wandb").glob(f"*/run-{run_id}.wandb")
             if (m := name.fullmatch(f.parent.name))]
    return [wandb_records(f) for _, _, f in sorted(found)]


def wandb_history(records: list) -> dict[int, dict]:
    """step -> the values logged at it."""
    out = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            out[r.history.step.num] = {k: v for k, v in items.items() if not k.startswith("_")}
    return out


def wandb_of(records: list, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def wandb_summary(records: list) -> dict:
    out = {}
    for s in wandb_of(records, "summary"):
        out |= {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in s.update}
    return out
