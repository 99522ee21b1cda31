"""Determinism: one seed gives byte-identical metrics.csv and clients.csv (wall-clock time lives in
timing.csv and summary.json only); separate RNG streams keep client sampling independent of the
method and of the evaluation schedule; deterministic=true switches PyTorch's deterministic mode on."""
from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from fedbench.execution import check_deterministic_model, set_determinism
from fedbench.errors import ConfigError
from tests.runs_helpers import SMALL, finish, popen_cli, run_dirs, run_inprocess  # noqa: F401

FILES = ("metrics.csv", "clients.csv")


def _files(results) -> dict[str, bytes]:
    (run,) = run_dirs(results)
    return {name: (run / name).read_bytes() for name in FILES}


def test_same_seed_gives_byte_identical_files_across_processes(tmp_path, data_root):
    args = [*SMALL, "method=fedbsd", "rounds=6", "eval_every=2"]
    procs = [popen_cli(*args, f"results_dir={tmp_path / name}") for name in ("a", "b")]
    for proc in procs:
        code, err = finish(proc)
        assert code == 0, err
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b
    assert b"wall" not in a["metrics.csv"]  # the one non-deterministic number is kept out
    (run,) = run_dirs(tmp_path / "a")
    assert list(pd.read_csv(run / "timing.csv")["round"]) == [2, 4, 6]


def test_same_seed_in_one_process_and_another_seed_differs(tmp_path, data_root):
    for name in ("a", "b"):
        run_inprocess(f"results_dir={tmp_path / name}", "rounds=4", "method=fedper")
    run_inprocess(f"results_dir={tmp_path / 'c'}", "rounds=4", "method=fedper", "seed=1")
    assert _files(tmp_path / "a") == _files(tmp_path / "b") != _files(tmp_path / "c")


def test_sampling_stream_ignores_method_and_eval_schedule(tmp_path, data_root):
    sampled = []
    for i, extra in enumerate([("method=fedavg", "eval_every=1"), ("method=fedbsd", "eval_every=3"),
                               ("method=local", "eval_every=5")]):
        run_inprocess(f"results_dir={tmp_path / str(i)}", "rounds=5", "join_ratio=0.3", *extra)
        (run,) = run_dirs(tmp_path / str(i))
        sampled.append(pd.read_csv(run / "clients.csv")["times_sampled"].tolist())
    assert sampled[0] == sampled[1] == sampled[2]


def test_deterministic_flag_turns_on_pytorch_deterministic_mode(tmp_path, data_root, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        s = run_inprocess(f"results_dir={tmp_path}", "rounds=2", "deterministic=true")
        assert s["deterministic"] is True
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        set_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_runs_with_deterministic_true_are_identical(tmp_path, data_root):
    args = ["device=cuda", "deterministic=true", "method=fedbsd", "rounds=4", "eval_every=2"]
    for name in ("a", "b"):
        run_inprocess(f"results_dir={tmp_path / name}", *args)
    try:
        assert _files(tmp_path / "a") == _files(tmp_path / "b")
    finally:
        set_determinism(False)


def test_gpu_op_without_deterministic_implementation_is_one_line_before_the_run(monkeypatch):
    """What deterministic=true does on a GPU when the model uses e.g. AdaptiveAvgPool2d:
    a one-line ConfigError from a probe step before the run directory exists (faked on CPU here)."""
    class NoDeterministicBackward(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("adaptive_avg_pool2d_backward_cuda does not have a deterministic "
                               "implementation, but you set 'torch.use_deterministic_algorithms(True)'")

    class OnCuda:
        device = torch.device("cuda")

        def __getitem__(self, item):
            return torch.zeros(2, 3)

    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    with pytest.raises(ConfigError, match="adaptive_avg_pool2d_backward_cuda, which has no deterministic"):
        check_deterministic_model(NoDeterministicBackward(), OnCuda(), torch.zeros(2, dtype=torch.long), "mymodel")
    check_deterministic_model(torch.nn.Linear(3, 2), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), "mlp")


def test_resnet18_pools_with_a_mean_not_adaptive_avg_pool():
    """ResNet-18's global pooling is a mean over H x W (deterministic backward on CUDA), with the value
    of torchvision's AdaptiveAvgPool2d(1)."""
    from fedbench.models import build_model

    net = build_model({"name": "resnet18"}, (3, 32, 32), 10)
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in net.modules())
    x = torch.randn(2, 512, 4, 4)
    torch.testing.assert_close(net.backbone.avgpool(x), torch.nn.AdaptiveAvgPool2d(1)(x))
