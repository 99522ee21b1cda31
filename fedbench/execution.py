"""Execution settings of a run that do not change its numbers: device, threads, determinism."""
from __future__ import annotations

import os
import sys

import torch

from fedbench.errors import ConfigError


def set_determinism(enabled: bool) -> None:
    """deterministic=true: PyTorch's deterministic algorithms (an op without one raises), cuDNN
    without autotuning, and cuBLAS with a fixed workspace (CUBLAS_WORKSPACE_CONFIG, read when cuBLAS
    starts, so it is set before any GPU work). CPU runs are deterministic either way."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(enabled))
    torch.backends.cudnn.deterministic = bool(enabled)
    if enabled:
        torch.backends.cudnn.benchmark = False


def check_deterministic_model(model, x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    """deterministic=true on a GPU: one forward/backward of a copy of `model` on two samples, so that
    an operation without a deterministic CUDA implementation (e.g. AdaptiveAvgPool2d's backward)
    is reported now, in one line, instead of failing the run at its first step."""
    import copy

    import torch.nn.functional as F

    if x.device.type != "cuda" or not torch.are_deterministic_algorithms_enabled():
        return
    probe = copy.deepcopy(model).train()
    try:
        with torch.random.fork_rng(devices=[]):  # the probe draws nothing; keep it that way
            F.cross_entropy(probe(x[:2]), y[:2]).backward()
    except RuntimeError as exc:
        if "deterministic" not in str(exc):
            raise
        op = str(exc).split()[0]
        raise ConfigError(f"deterministic=True: model={name!r} uses {op}, which has no deterministic "
                          "implementation on CUDA; use deterministic=false (results may then differ in the "
                          "last bits between runs) or device=cpu") from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_threads(value) -> int:
    """Threads for this run: the config value; auto = the cores given to this run alone (Slurm's
    allocation, or a CPU affinity narrower than the machine, as the local launcher sets per run),
    else 1.

    Why 1 when the run may use every core of the machine: nothing says those cores are free. On a
    shared 2-core machine, PyTorch's spinning intra-op threads made training 7-25x slower than one
    thread while other processes ran, and one thread was as fast or faster for the small models of
    pFL even then (README, Performance). threads=N uses N anyway; more than the cores this process
    may run on (its CPU affinity) gets a warning line, as spinning threads then only slow it down."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if value not in (None, "auto"):
        if int(value) > allowed:  # more threads than cores only adds contention
            print(f"fedbench: warning: threads={value} is more than the {allowed} cores this run may use; "
                  f"expect it to be slower than threads={allowed}", file=sys.stderr)
        return int(value)
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    return allowed if allowed < (os.cpu_count() or allowed) else 1
