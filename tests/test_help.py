"""`python -m fedbench --help` says what the tool does, names the companion commands, and lists every
group's options with one line each, read from conf/ and methods/ (so a new preset or method appears)."""
from fedbench.config import group_options
from tests.conftest import run_cli


def test_help_describes_the_tool_its_commands_and_every_option():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "powered by Hydra" not in proc.stdout
    assert proc.stdout.startswith("fedbench: personalized federated learning")
    for command in ("fedbench.report", "fedbench.tune", "fedbench.reproduce", "fedbench.publish"):
        assert f"python -m {command}" in proc.stdout
    lines = proc.stdout.splitlines()
    for group in ("method", "dataset", "partition", "model", "experiment", "logger"):
        for option in group_options(group):
            line = next(ln for ln in lines if ln.startswith(f"    {option} "))
            assert len(line.split(None, 1)) == 2, line          # every option says what it is
    assert any("fmnist_skew" in ln and "Label skew on real images" in ln for ln in lines)
