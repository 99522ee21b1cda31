"""Equivalence checks shared by the method tests: two federations trained round by round, then their
global models or a personal model compared bit for bit."""
import torch


def train_both(a, b, rounds: int) -> None:
    for t in range(rounds):
        a.train_round(t)
        b.train_round(t)


def assert_same_global(a, b) -> None:
    assert set(a.global_state) == set(b.global_state)
    for k in b.global_state:
        assert torch.equal(a.global_state[k], b.global_state[k]), k


def assert_personal_is_local(fed, local, prefix: str) -> None:
    """fed's personal model (store keys prefix + key) equals the `local` method's model, every client."""
    for k, own in local.tensors.store.tensors.items():
        assert torch.equal(fed.tensors.store.tensors[prefix + k], own), k
