"""Checkpoints carry a sha256: one with flipped weight bytes is ignored with one warning line (no
advice to load it unsafely) and the run starts from round 0, ending identical to a clean run."""
from __future__ import annotations

import hashlib
import io
import os
import pickle

import pytest
import torch

from fedbench.rundir import CHECKPOINT
from fedbench.rundir import checkpoint
from fedbench.federation import Federation
from fedbench.files import _UMASK
from tests.runs_helpers import run_dirs, run_inprocess, summary

FILES = ("metrics.csv", "clients.csv")
OVERRIDES = ["rounds=6", "eval_every=2", "checkpoint_every=2"]


def _stopped_after_round_4(results, monkeypatch):
    """A run stopped (Ctrl-C) during round 5: status interrupted, checkpoint of round 4 on disk."""
    train_round = Federation.train_round

    def stop_at_5(self, t):
        if t == 4:
            raise KeyboardInterrupt
        return train_round(self, t)

    monkeypatch.setattr(Federation, "train_round", stop_at_5)
    with pytest.raises(KeyboardInterrupt):
        run_inprocess(f"results_dir={results}", *OVERRIDES)
    monkeypatch.setattr(Federation, "train_round", train_round)
    (run,) = run_dirs(results)
    assert summary(run)["status"] == "interrupted"
    return run


def test_checkpoint_with_flipped_weight_bytes_is_ignored_and_the_run_restarts(tmp_path, data_root, monkeypatch, capsys):
    run_inprocess(f"results_dir={tmp_path / 'ref'}", *OVERRIDES)
    (ref,) = run_dirs(tmp_path / "ref")
    run = _stopped_after_round_4(tmp_path / "run", monkeypatch)
    path = run / CHECKPOINT
    weight = next(iter(_payload(path)["federation"]["global_state"].values())).numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(weight[:64])
    assert at > 0
    data[at + 8:at + 12] = bytes(b ^ 0xFF for b in data[at + 8:at + 12])  # four bytes of one global weight
    path.write_bytes(bytes(data))
    capsys.readouterr()
    s = run_inprocess(f"results_dir={tmp_path / 'run'}", *OVERRIDES)
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if ln.startswith("fedbench: warning")]
    assert len(warnings) == 1 and "checksum does not match" in warnings[0] and "starting from round 0" in warnings[0]
    assert "weights_only" not in err and "resuming" not in err
    assert s["status"] == "complete" and "resumed_from_round" not in s
    for name in FILES:
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name


def _payload(path) -> dict:
    """What a checkpoint holds (the torch.save part, before its checksum trailer)."""
    return torch.load(io.BytesIO(path.read_bytes()[:-len(checkpoint.TAG) - 64]), weights_only=True)


def test_a_checksummed_pickle_that_would_run_code_is_still_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    body = pickle.dumps({"format": checkpoint.FORMAT, "x": Evil()})
    path = tmp_path / CHECKPOINT
    path.write_bytes(body + checkpoint.TAG + hashlib.sha256(body).hexdigest().encode())
    payload, why = checkpoint.load(path, "k", 10, "cpu")
    assert payload is None and "unreadable" in why and "weights_only" not in why
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_is_as_readable_as_the_results_files(tmp_path):
    path = tmp_path / CHECKPOINT
    checkpoint.save(path, {"format": checkpoint.FORMAT, "key": "k", "round": 1})
    assert path.stat().st_mode & 0o777 == 0o666 & ~_UMASK
    assert checkpoint.load(path, "k", 10, "cpu")[0]["round"] == 1
