"""Resume: a run killed at any moment (kill -9), stopped by SIGTERM, or asked to checkpoint by a
Slurm/submitit signal, rerun with the same command, ends with files byte-identical to a run that was
never interrupted. Checkpoints are atomic, load with weights_only=True, and vanish once a run ends."""
from __future__ import annotations

import io
import os
import random
import signal
import time

import pytest
import torch

import methods
from fedbench.rundir import CHECKPOINT
from fedbench.rundir import checkpoint
from fedbench.federation import Federation
from tests.conftest import make_federation, method_hp
from tests.runs_helpers import SMALL, finish, popen_cli, run_dirs, run_inprocess, summary  # noqa: F401

FILES = ("metrics.csv", "clients.csv")


def _rows(run) -> int:
    try:
        return max(0, len((run / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _reached(results, at_least: int, proc) -> bool:
    runs = run_dirs(results)
    if runs and _rows(runs[0]) >= at_least:
        return True
    if proc.poll() is not None:
        pytest.fail(f"the run ended before round {at_least}: {proc.stderr.read()}")
    return False


def _signal_at_rows(victims: dict, procs: dict, timeout=300) -> None:
    """Send each victim (results dir -> (rows, signal)) its signal once it has that many rows,
    watching all of them at once (waiting for one while another runs on could let it finish)."""
    pending, deadline = dict(victims), time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for results, (at, sig) in list(pending.items()):
            if _reached(results, at, procs[results]):
                procs[results].send_signal(sig)
                del pending[results]
        time.sleep(0.02)
    if pending:
        pytest.fail("the run made no progress")


def _wait_rows(results, at_least: int, proc, timeout=300):
    _signal_at_rows({results: (at_least, 0)}, {results: proc}, timeout)  # signal 0: only checks the process
    return run_dirs(results)[0]


def test_kill9_and_sigterm_then_rerun_gives_identical_files(tmp_path, data_root):
    """Three CLI runs of one config at once: a reference, one killed with SIGKILL at a random round,
    one stopped with SIGTERM at another; rerunning the same command finishes both identically."""
    rounds = 24
    args = [*SMALL, f"rounds={rounds}", "eval_every=1", "checkpoint_every=1"]
    rng = random.Random()
    kill_at, term_at = rng.randint(2, rounds - 6), rng.randint(2, rounds - 6)
    ref, killed, termed = tmp_path / "ref", tmp_path / "kill", tmp_path / "term"
    procs = {d: popen_cli(*args, f"results_dir={d}") for d in (ref, killed, termed)}

    victims = {killed: (kill_at, signal.SIGKILL), termed: (term_at, signal.SIGTERM)}
    _signal_at_rows(victims, procs)
    code, err = finish(procs[termed])
    assert code == 143, err
    lines = [ln for ln in err.splitlines() if ln.startswith("fedbench")]
    assert len(lines) == 1 and "stopped by SIGTERM after round" in lines[0] and "Traceback" not in err, err
    (term_run,) = run_dirs(termed)
    assert summary(term_run)["status"] == "interrupted"
    assert finish(procs[killed])[0] == -signal.SIGKILL
    (kill_run,) = run_dirs(killed)
    assert summary(kill_run)["status"] == "running"
    assert finish(procs[ref])[0] == 0

    again = {d: popen_cli(*args, f"results_dir={d}") for d in (killed, termed)}
    (ref_run,) = run_dirs(ref)
    for results, proc in again.items():
        code, err = finish(proc)
        assert code == 0, err
        assert "resuming" in err and "from round 0" not in err, (victims[results], err)
        (run,) = run_dirs(results)
        assert summary(run)["status"] == "complete" and summary(run)["resumed_from_round"] >= 1
        for name in FILES:
            assert (run / name).read_bytes() == (ref_run / name).read_bytes(), (name, victims[results])
        assert not (run / CHECKPOINT).exists()
        assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("method", methods.available())
def test_every_method_resumes_exactly_from_a_checkpoint(method):
    """Federation.state_dict round-trips through torch.save / torch.load(weights_only=True) mid-run
    and the continued run equals an uninterrupted one, for every method: a method keeping state
    outside the client store and its declared server state fails here (tests/test_server_contract.py
    breaks one on purpose)."""
    cheaper = {"local_steps": 4, "head_epochs": 2, "ft_epochs": 1, "inner_steps": 2}  # same mechanisms
    check_resume(method, {k: v for k, v in cheaper.items() if k in method_hp(method)})


def check_resume(method, hp: dict, rounds: int = 4, cut: int = 2) -> None:
    """A federation of `method` (a name or a class) checkpointed after `cut` rounds and resumed in a
    fresh one equals the uninterrupted run: evaluation, tensors, server state, bytes."""
    model = {"name": "mlp", "hidden": [16, 8], "bn": True}  # BatchNorm so that fedbn can run too

    def fresh():
        return make_federation(method, rounds=rounds, join_ratio=0.5, model=model, hp_overrides=hp)

    def evaluate(fed):
        return {k: v.tolist() for k, v in fed.evaluate(rounds - 1).items()}

    torch.manual_seed(123)
    ref = fresh()
    for t in range(rounds):
        ref.train_round(t)
    want = evaluate(ref)

    torch.manual_seed(123)
    first = fresh()
    for t in range(cut):
        first.train_round(t)
    buffer = io.BytesIO()
    torch.save({"federation": first.state_dict(), "rng": checkpoint.capture_rng()}, buffer)
    torch.manual_seed(999)  # a resumed process starts with other RNG states
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    second = fresh()
    second.load_state_dict(state["federation"])
    checkpoint.restore_rng(state["rng"])
    for t in range(cut, rounds):
        second.train_round(t)
    assert evaluate(second) == want
    for k, v in ref.global_state.items():
        assert torch.equal(second.global_state[k], v), k
    for k, v in ref.tensors.store.tensors.items():
        assert torch.equal(second.tensors.store.tensors[k], v), k
    for k, v in ref.server.state.items():   # the method's server state too
        assert torch.equal(second.server.state[k], v), k
    assert (second.bytes_up, second.bytes_down) == (ref.bytes_up, ref.bytes_down)
    assert (second.times_sampled == ref.times_sampled).all()


def test_load_state_dict_rejects_another_runs_state():
    a = make_federation("fedavg")
    b = make_federation("fedper")
    with pytest.raises(ValueError):
        a.load_state_dict(b.state_dict())


def _ref_files(tmp_path, *overrides):
    run_inprocess(f"results_dir={tmp_path / 'ref'}", *overrides)
    (run,) = run_dirs(tmp_path / "ref")
    return {name: (run / name).read_bytes() for name in FILES}


def test_previous_signal_handler_is_called_after_the_checkpoint(tmp_path, data_root, monkeypatch):
    """Under submitit the Slurm signal (USR2) belongs to submitit: the run notes it, checkpoints at
    the end of the round, then calls submitit's handler; a handler that exits (requeue) leaves an
    'interrupted' run that the requeued job resumes to identical files."""
    overrides = ["rounds=8", "eval_every=2", "checkpoint_every=0"]
    want = _ref_files(tmp_path, *overrides)
    results = tmp_path / "run"
    seen = []

    def requeue(signum, frame):  # what submitit's checkpoint_and_try_requeue does, minus scontrol
        (run,) = run_dirs(results)
        state = torch.load(run / CHECKPOINT, weights_only=True)
        seen.append((signum, state["round"]))
        raise SystemExit(-1)

    train_round = Federation.train_round

    def signalling_round(self, t):
        loss = train_round(self, t)
        if t == 4:
            os.kill(os.getpid(), signal.SIGUSR2)
        return loss

    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        monkeypatch.setattr(Federation, "train_round", signalling_round)
        with pytest.raises(SystemExit):
            run_inprocess(f"results_dir={results}", *overrides)
        assert signal.getsignal(signal.SIGUSR2) is requeue  # restored after the run
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert seen == [(signal.SIGUSR2, 5)]
    (run,) = run_dirs(results)
    assert summary(run)["status"] == "interrupted"
    monkeypatch.setattr(Federation, "train_round", train_round)
    s = run_inprocess(f"results_dir={results}", *overrides)
    assert s["status"] == "complete" and s["resumed_from_round"] == 5
    assert {name: (run / name).read_bytes() for name in FILES} == want


def test_sigusr1_without_owner_only_forces_a_checkpoint(tmp_path, data_root, monkeypatch):
    train_round = Federation.train_round
    rounds_seen = []

    def signalling_round(self, t):
        loss = train_round(self, t)
        if t == 2:
            os.kill(os.getpid(), signal.SIGUSR1)
        if t == 3:  # the checkpoint of round 3 was written when round 3 (t=2) ended
            rounds_seen.append(torch.load(next(tmp_path.glob("runs/**/checkpoint.pt")), weights_only=True)["round"])
        return loss

    monkeypatch.setattr(Federation, "train_round", signalling_round)
    previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        s = run_inprocess(f"results_dir={tmp_path}", "rounds=5", "checkpoint_every=0")
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert s["status"] == "complete" and rounds_seen == [3]
    assert not list(tmp_path.glob("runs/**/checkpoint.pt"))  # deleted once complete


def test_corrupt_checkpoint_or_leftover_temp_file_never_breaks_a_run(tmp_path, data_root, capsys):
    overrides = ["rounds=6", "eval_every=2", "checkpoint_every=2"]
    want = _ref_files(tmp_path, *overrides)
    results = tmp_path / "run"
    run_inprocess(f"results_dir={results}", *overrides)
    (run,) = run_dirs(results)
    os.remove(run / "summary.json")  # as if killed: no summary says complete
    (run / CHECKPOINT).write_bytes(b"\x80\x02garbage, as if the disk lost it")
    (run / f".{CHECKPOINT}.abc123.tmp").write_bytes(b"half a file from a kill mid-write")
    for name in FILES:
        (run / name).unlink()
    capsys.readouterr()
    s = run_inprocess(f"results_dir={results}", *overrides)
    err = capsys.readouterr().err
    assert "ignoring checkpoint" in err and "starting from round 0" in err
    assert s["status"] == "complete" and "resumed_from_round" not in s
    assert {name: (run / name).read_bytes() for name in FILES} == want
    assert not (run / CHECKPOINT).exists() and not list(run.glob(".*.tmp"))


def test_complete_run_is_read_not_recomputed_and_stale_checkpoint_removed(tmp_path, data_root, capsys):
    first = run_inprocess(f"results_dir={tmp_path}", "rounds=3")
    (run,) = run_dirs(tmp_path)
    stamp = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    (run / CHECKPOINT).write_bytes(b"left by a kill between summary and cleanup")
    again = run_inprocess(f"results_dir={tmp_path}", "rounds=3")
    assert again == first and "already complete" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == stamp


def test_checkpoint_of_another_config_is_ignored(tmp_path):
    path = tmp_path / CHECKPOINT
    checkpoint.save(path, {"format": checkpoint.FORMAT, "key": "abc", "round": 3})
    assert checkpoint.load(path, "abc", 10, "cpu")[0]["round"] == 3
    assert checkpoint.load(path, "xyz", 10, "cpu") == (None, "it belongs to another config")
    assert checkpoint.load(path, "abc", 2, "cpu")[0] is None
    assert checkpoint.load(tmp_path / "none.pt", "abc", 10, "cpu") == (None, "")


def test_checkpoint_file_cannot_run_code(tmp_path):
    """torch.load(weights_only=True): a pickle that would call a function is refused, not run."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / CHECKPOINT
    path.write_bytes(pickle.dumps({"format": checkpoint.FORMAT, "x": Evil()}))
    payload, why = checkpoint.load(path, "k", 10, "cpu")
    assert payload is None and "unreadable" in why and not (tmp_path / "pwned").exists()


@pytest.mark.skipif(os.environ.get("FEDBENCH_SLURM_REQUEUE_TEST") != "1",
                    reason="about 3 min (Slurm holds a requeued job ~2 min): set FEDBENCH_SLURM_REQUEUE_TEST=1 "
                           "with a Slurm cluster up (../shared/slurm_local.sh start)")
def test_slurm_usr2_checkpoints_requeues_and_resumes(tmp_path, data_root):
    """The real protocol: Slurm's USR2 (as before a time limit) reaches submitit's handler through the
    run, which first writes a checkpoint; submitit requeues the job; the requeued job resumes."""
    import subprocess

    args = [*SMALL, "rounds=300", "eval_every=10", "checkpoint_every=0"]
    results = tmp_path / "slurm"
    proc = popen_cli("-m", "hydra/launcher=slurm", *args, f"results_dir={results}", "seed=0",
                     "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10",
                     "hydra.callbacks.report.enabled=false")
    _wait_rows(results, 3, proc)
    (job,) = [p.name for p in results.glob("sweeps/*/.submitit/*") if p.name.isdigit()]
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    code, err = finish(proc, timeout=600)
    assert code == 0, err
    (run,) = run_dirs(results)
    assert summary(run)["status"] == "complete" and summary(run)["resumed_from_round"] >= 3
    logs = "".join(p.read_text() for p in results.glob("sweeps/*/.submitit/*/*_log.*"))
    assert "checkpoint saved, passing the signal on" in logs and "Requeued job" in logs
    run_inprocess(f"results_dir={tmp_path / 'ref'}", *args[len(SMALL):])
    (ref,) = run_dirs(tmp_path / "ref")
    for name in FILES:
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
