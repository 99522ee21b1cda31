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


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform's), '' when unknown."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device, threads: int) -> dict:
    """What a run's numbers may depend on beyond its config: the float path its kernels took. On CPU,
    torch's vectorized kernels are chosen by CPU capability (DEFAULT, AVX2, AVX512; ATEN_CPU_CAPABILITY
    forces one) and reductions split by the thread count; on a GPU, the device and its libraries. The
    same config on another float path may differ in the last bits, and a chaotic one by whole points
    (README, Evaluation protocol: stability)."""
    import platform

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        gpu = torch.cuda.get_device_name(index)
        path = f"cuda {gpu}, cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}"
    else:
        gpu, path = None, f"cpu {torch.backends.cpu.get_cpu_capability()}, {threads} thread{'s' * (threads != 1)}"
    return {"float_path": path, "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "host": platform.node()}
