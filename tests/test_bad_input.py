"""Bad input costs one line: the key, the value and what is allowed; exit code 2; no traceback; no
run directory. Most cases go through `fedbench.cli.precheck` in-process (exactly what the command
line runs before Hydra starts, so it also covers Hydra-level mistakes); a batch goes through real
command lines, in parallel; and the data-dependent ones through the job itself."""
from __future__ import annotations

import pickle

import pytest
import torch

import methods
from fedbench.cli import precheck
from fedbench.config import prepare
from fedbench.config.method_parts import method_specs, own_specs
from fedbench.errors import ConfigError
from tests.runs_helpers import compose_cfg, finish, popen_cli, run_dirs, run_inprocess  # noqa: F401

# (command line, words the one-line message must contain)
CASES = [
    (["method=fedavgg"], ["method='fedavgg'", "fedavg", "fedbsd", "pfedme"]),
    (["dataset=cifar1000"], ["dataset='cifar1000'", "cifar10", "digits"]),
    (["partition=dirichlett"], ["partition='dirichlett'", "dirichlet", "pathological"]),
    (["model=vgg"], ["model='vgg'", "mlp", "resnet18"]),
    (["-m", "method=fedavg,nope"], ["method='nope'"]),
    (["partition.alpha=0"], ["partition.alpha=0", "> 0"]),
    (["partition.alpha=-0.5"], ["partition.alpha=-0.5", "> 0"]),
    (["partition=pathological", "partition.classes_per_client=0"], ["partition.classes_per_client=0", ">= 1"]),
    (["partition=pathological", "partition.classes_per_client=11"], ["partition.classes_per_client=11", "10 classes"]),
    (["num_clients=400"], ["num_clients=400", "1797", "partition.min_samples"]),
    (["partition=iid", "partition.min_samples=1", "num_clients=2000"], ["num_clients=2000", "1797"]),
    (["join_ratio=0"], ["join_ratio=0", "(0, 1]"]),
    (["join_ratio=1.01"], ["join_ratio=1.01", "(0, 1]"]),
    (["rounds=0"], ["rounds=0", "integer >= 1"]),
    (["local_epochs=0"], ["local_epochs=0", "integer >= 1"]),
    (["batch_size=-3"], ["batch_size=-3", "integer >= 1"]),
    (["eval_every=0"], ["eval_every=0", "integer >= 1"]),
    (["lr=0"], ["lr=0", "> 0"]),
    (["lr=-0.1"], ["lr=-0.1", "> 0"]),
    (["-m", "lr=0.1,-1"], ["lr=-1", "> 0"]),
    (["lr=abc"], ["lr='abc'", "number > 0"]),
    (["rounds=ten"], ["rounds='ten'", "integer >= 1"]),
    (["rounds=2.5"], ["rounds=2.5", "integer"]),
    (["batch_size=null"], ["batch_size=None", "integer"]),
    (["progress=maybe"], ["progress='maybe'", "true or false"]),
    (["seed=-1"], ["seed=-1", ">= 0"]),
    (["momentum=1.5"], ["momentum=1.5", "[0, 1)"]),
    (["checkpoint_every=-1"], ["checkpoint_every=-1", ">= 0"]),
    (["threads=0"], ["threads=0", "auto"]),
    (["device=tpu"], ["device='tpu'", "auto, cpu, cuda"]),
    (["data.val_frac=0.5", "data.test_frac=0.6"], ["data.test_frac=0.6", "< 1"]),
    (["method=fedbn"], ["method='fedbn'", "BatchNorm", "model.bn=true"]),
    (["model=cnn"], ["model='cnn'", "dataset=digits", "(64,)"]),
    (["model.head_layers=4"], ["model.head_layers=4", "[1, 2]"]),
    (["method.lamda=1"], ["method.lamda=1", "unknown key", "lam"]),
    (["+method.lamda=1"], ["method.lamda=1", "unknown key", "lam"]),
    (["+lamda=1"], ["lamda=1", "unknown key", "rounds"]),
    (["seed=0,1"], ["seed=0,1", "--multirun"]),
    (["seed=[0"], ["seed=[0", "not a valid override"]),
    (["results_dir=/etc/hostname/results"], ["results_dir='/etc/hostname/results'", "not a directory"]),
    (["method=fedavg", "method.weighting=mean"], ["method.weighting='mean'", "'samples' or 'uniform' or null"]),
    (["method=fedavg", "method.ft_epochs=-1"], ["method.ft_epochs=-1", ">= 0"]),
    (["method=fedbsd", "method.lam=-1"], ["method.lam=-1", ">= 0"]),
    (["method=fedbsd", "method.loss=l1"], ["method.loss='l1'", "kl, mse, cosine"]),
    (["method=fedbsd", "method.tau=0"], ["method.tau=0", "> 0"]),
    (["method=fedprox", "method.mu=-0.1"], ["method.mu=-0.1", ">= 0"]),
    (["method=pfedme", "method.lam=-15"], ["method.lam=-15", ">= 0"]),
    (["dataset=synthetic", "dataset.num_classes=1"], ["dataset.num_classes=1", ">= 2"]),
    (["dataset=synthetic", "dataset.alpha=-1"], ["dataset.alpha=-1", ">= 0"]),
    (["dataset=digits", "partition=natural"], ["partition='natural'", "no natural groups"]),
    (["dataset=fmnist", "dataset.samples=0"], ["dataset.samples=0", "null or an integer in [1, 70000]"]),
    (["dataset=mnist", "dataset.samples=100"], ["num_clients=20", "dataset=mnist has 100"]),  # size = the subset's
    (["experiment=nope"], ["experiment='nope'", "fedbsd_ablation"]),
    (["-m", "experiment=fedbsd_ablation", "method.tau=0"], ["method.tau=0", "> 0"]),
    # a backbone/head method on a model whose backbone holds no parameters: FedAvg or Local in disguise
    (["method=fedbsd", "model.hidden=[]"], ["method='fedbsd'", "no parameters in its backbone", "model.hidden=[]"]),
    (["method=fedper", "model.hidden=[]"], ["method='fedper'", "shared: backbone; personal: head"]),
    (["method=lgfedavg", "model.hidden=[16]", "model.head_layers=2"], ["method='lgfedavg'", "model.head_layers=2"]),
    (["method=fedbabu", "model.hidden=[]"], ["method='fedbabu'", "shared: backbone"]),
    (["method=fedavg_ft", "model.hidden=[]", "method.ft_part=backbone"], ["method.ft_part: backbone"]),
    (["model.hidden=[0]"], ["model.hidden=[0]", "must be a list, each item an integer >= 1"]),
    (["method=[fedavg,fedper]"], ["method=[fedavg,fedper]", "one method", "-m method=fedavg,fedper"]),
    (["logger=comet"], ["logger='comet'", "unknown logger", "mlflow, none, tensorboard, wandb"]),
    (["logger=[tensorboard,comet]"], ["logger='comet'", "unknown logger"]),
    (["-m", "logger=tensorboard,mlflow"], ["logger=tensorboard,mlflow", "logger=[tensorboard,mlflow]"]),
    (["logger=mlflow", "logger.mlflow.uri=x"], ["logger.mlflow.uri=x", "unknown key", "tracking_uri"]),
    (["logger=mlflow", "logger.mlflow.experiment="], ["logger.mlflow.experiment=''", "non-empty string"]),
    (["logger=wandb", "logger.wandb.mode=sometimes"], ["logger.wandb.mode='sometimes'", "auto, offline, online"]),
    (["logger.wandb.project=x"], ["logger.wandb.project=x", "not chosen", "logger=wandb"]),
    (["+logger.comet.key=1"], ["logger.comet", "unknown logger", "logger=[tensorboard,mlflow]"]),
]
if not torch.cuda.is_available():
    CASES.append((["device=cuda"], ["device='cuda'", "no CUDA GPU", "device=cpu"]))


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_value_gives_one_line_naming_key_value_and_allowed(args, words):
    with pytest.raises(ConfigError) as info:
        precheck(args)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


# Real command lines, all started at once (import time dominates): exit 2, one line, no traceback,
# nothing written under results_dir. rounds=2: a case that slipped through must not run for long.
CLI_CASES = [
    (["method=fedavgg"], "method='fedavgg'"),
    (["-m", "seed=0,1", "partition.alpha=0.1,0"], "partition.alpha=0"),
    (["lr=abc"], "lr='abc'"),
    (["method.lamda=1"], "method.lamda=1"),
    (["-m", "method=fedavg,fedbn"], "BatchNorm"),
    (["method=fedbsd", "method.lam=-1"], "method.lam=-1"),
    # known only once the data exists: the job's own check, still before any run directory
    (["dataset=synthetic", "dataset.max_samples=5", "dataset.min_samples_per_client=5", "num_clients=3"],
     "partition.min_samples=10"),
    (["results_dir={tmp}/file/results"], "not a directory"),
    (["dataset=cifar10", "data.download=false"], "md5"),                               # corrupt files
    (["dataset=cifar10", "data.download=false", "data.verify=false"], "could not be read"),
]


def test_bad_values_through_the_command_line(tmp_path, data_root):
    (tmp_path / "file").write_text("a file, not a directory")
    d = data_root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (d / name).write_bytes(pickle.dumps({"data": "x"})[:7])  # truncated pickles
    procs = [(popen_cli("progress=false", "rounds=2", f"results_dir={tmp_path / str(i)}",
                        *[a.format(tmp=tmp_path) for a in args]), want)
             for i, (args, want) in enumerate(CLI_CASES)]
    for proc, want in procs:
        code, err = finish(proc, timeout=300)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2, err
        assert len(lines) == 1 and lines[0].startswith("fedbench: error: ") and want in lines[0], err
    assert not list(tmp_path.glob("*/runs")) and not (tmp_path / "file" / "results").exists()


def test_slurm_sweep_is_not_checked_for_a_gpu_on_the_login_node():
    """With hydra/launcher=slurm the jobs run elsewhere: device=cuda is checked by each job."""
    precheck(["-m", "hydra/launcher=slurm", "device=cuda", "seed=0,1", "rounds=3"])


def test_valid_sweeps_pass(tmp_path):
    precheck(["-m", "method=fedavg,fedper,fedbsd", "lr=0.01,0.1", "seed=0,1,2", "partition.alpha=0.1,0.5",
              f"results_dir={tmp_path}"])
    precheck(["method=fedbn", "model.bn=true", "rounds=3"])
    precheck(["dataset=cifar10", "model=resnet18", "method=fedbn"])
    precheck(["--help"])  # Hydra's own flags are Hydra's business
    precheck(["-m", "method=fedavg,local,ditto,fedrod", "model.hidden=[]"])  # no backbone/head split to lose
    precheck(["-m", "hydra/launcher=slurm", "logger=[tensorboard,mlflow,wandb]", "seed=0,1"])  # installed on the nodes


@pytest.mark.parametrize("method", methods.available())
def test_every_method_default_config_is_valid_and_ranges_name_real_keys(method):
    model = ["model.bn=true"] if methods.get(method).needs_batchnorm else []
    cfg = prepare(compose_cfg(f"method={method}", *model))
    own = set(own_specs(methods.get(method)))
    assert own <= set(cfg.method), f"ranges of {method} name keys its yaml lacks: {own - set(cfg.method)}"
    assert set(cfg.method) - {"name", "official_optimizer"} <= set(method_specs(methods.get(method))) | {"search"}


def test_corrupt_partition_cache_is_rebuilt_not_used(tmp_path, data_root, caplog):
    first = run_inprocess(f"results_dir={tmp_path / 'a'}", "rounds=2")
    (entry,) = (data_root / "partitions").iterdir()
    npz = entry / "partition.npz"
    good = npz.read_bytes()
    npz.write_bytes(good[:-40] + bytes(40))  # flipped bytes: sha256 no longer matches
    second = run_inprocess(f"results_dir={tmp_path / 'b'}", "rounds=2")
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    assert npz.read_bytes() == good
    assert second["final_acc"] == first["final_acc"]
    (a,), (b,) = run_dirs(tmp_path / "a"), run_dirs(tmp_path / "b")
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
