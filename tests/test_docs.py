"""README stays true: its generated blocks (method table, presets) equal what the code generates today,
every method links its paper (declared in its own class, never inherited from FedAvg), README reads
in five minutes (under 400 lines, a contents list first) and its two commands are .ci/run's."""
import re

import methods
from fedbench.docs import README, rewrite
from tests.conftest import ROOT


def test_readme_generated_blocks_are_current():
    text = README.read_text(encoding="utf-8")
    assert rewrite(text) == text, "README is stale: run python -m fedbench.docs"


def test_every_method_names_its_own_paper():
    for name in methods.available():
        paper = vars(methods.get(name)).get("paper")
        assert paper is not None, f"{name} declares no paper of its own"
        assert paper.startswith("https://") or name == "local", name


def test_readme_is_short_with_contents_and_ci_runs_its_test_command():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 400 and "**Contents:**" in text.split("## The two commands")[0]
    test_command = re.findall(r"```bash\n(.*?)\n```", text, re.S)[1]
    assert test_command in (ROOT / ".ci" / "run").read_text()
    for path in re.findall(r"\]\(((?:docs|results|LICENSE|CITATION)[^)#]*)", text):
        assert (ROOT / path).exists(), path
