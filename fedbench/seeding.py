"""One seed, separate random streams.

Every random decision draws from a stream named by its purpose and keyed by where it happens
(round, client), so that e.g. changing a method or the evaluation frequency never shifts the
client-sampling stream, and a resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import numpy as np
import torch

STREAMS = {"partition": 1, "split": 2, "sampling": 3, "init": 4, "data": 5, "method": 6, "finetune": 7,
           "subsample": 8, "start": 9, "receive": 10, "jitter": 11,
           "unseen": 12, "newcomer": 13}


def stream_seed(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit integer seed for `stream` at position `keys` (e.g. round, client)."""
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(STREAMS[stream], *map(int, keys)))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def numpy_rng(seed: int, stream: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng(stream_seed(seed, stream, *keys))


def torch_generator(seed: int, stream: str, *keys: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(stream_seed(seed, stream, *keys))
    return g


@torch.no_grad()
def jitter_(model: torch.nn.Module, size: float, seed: int) -> None:
    """Every floating parameter and buffer of `model` times (1 + size * N(0, 1)), drawn from the
    `jitter` stream: with a rounding-size `size` (1e-6 is ~8 float32 ulps), a run on another float path
    in miniature (the init, the data order and every other stream unchanged)."""
    if not size:
        return
    g = torch_generator(seed, "jitter")
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            t.mul_(1 + size * torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.device, t.dtype))
