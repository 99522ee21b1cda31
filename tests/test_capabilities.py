"""Methods declare what they are; the harness reads the declarations and names no method: no file of
the engines or the round imports `methods` or spells a method's name, and every method's `hooks` are
exactly the FedAvg hooks it overrides (derived, for any subclass)."""
import re
from pathlib import Path

import pytest

import methods
from methods.base import HOOKS, Method as FedAvg

ROOT = Path(__file__).resolve().parents[1]
HARNESS = [*sorted((ROOT / "fedbench" / "federation").glob("*.py")), *sorted((ROOT / "fedbench" / "engines").glob("*.py"))]


@pytest.mark.parametrize("path", HARNESS, ids=lambda p: p.name)
def test_the_harness_names_no_method(path):
    text = path.read_text()
    assert not re.search(r"^\s*(from|import)\s+methods\b", text, re.M), f"{path.name} imports methods"
    names = "|".join(m for m in methods.available() if m != "local")  # "local" is also an ordinary word
    code = "\n".join(line.split("#")[0] for line in text.splitlines())  # comments may cite measurements
    found = re.findall(rf"\b({names})\b", code, re.I)
    assert not found, f"{path.name} names methods: {sorted(set(found))}"


def test_every_public_method_of_fedavg_is_a_hook():
    assert set(HOOKS) == {k for k, v in vars(FedAvg).items() if callable(v) and not k.startswith("_")}


@pytest.mark.parametrize("name", methods.available())
def test_hooks_are_exactly_the_overridden_hooks(name):
    cls = methods.get(name)
    overridden = {h for h in HOOKS if getattr(cls, h) is not getattr(FedAvg, h)}
    assert set(cls.hooks) == overridden, f"{name}.hooks = {cls.hooks}, overrides {sorted(overridden)}"


def test_hooks_are_derived_for_any_subclass():
    class Adapting(FedAvg):
        def adapt(self, cohort):
            pass

    class Predicting(Adapting):
        def predict(self, client, x):
            return client.model(x)

    assert Adapting.hooks == ("adapt",) and Predicting.hooks == ("adapt", "predict") and FedAvg.hooks == ()


@pytest.mark.parametrize("name", methods.available())
def test_declarations_are_well_formed(name):
    cls = methods.get(name)
    assert cls.evaluates in ("model", "personal_model")
    assert cls.weighting in ("samples", "uniform")
    assert cls.evaluates == "model" or cls.personal_model  # a personal model to evaluate must exist
    assert cls.vectorizable or cls.why_not_vectorizable
