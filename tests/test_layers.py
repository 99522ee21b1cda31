"""fedbench/__init__.py's layering sentence is true: each stage of a run imports only the stages listed
below it (a module-level or function-level import alike)."""
import ast
from pathlib import Path

from tests.conftest import ROOT

ORDER = [("entry", ["fedbench.cli", "fedbench.callbacks", "fedbench.sweep_dirs"]),
         ("run", ["fedbench.run", "fedbench.execution", "fedbench.tracking"]),
         ("run directory", ["fedbench.rundir"]),
         ("config", ["fedbench.config", "fedbench.tracking.loggers"]),
         ("round", ["fedbench.federation"]),
         ("engines", ["fedbench.engines"]),
         ("methods", ["methods", "fedbench.toolkit"]),
         ("data", ["fedbench.data"]),
         ("model", ["fedbench.models"]),
         ("basics", ["fedbench.optimizer", "fedbench.metrics", "fedbench.code", "fedbench.registry", "fedbench.files",
                     "fedbench.seeding", "fedbench.errors"])]


def layer(module: str):
    """The stage of a module: the one whose listed prefix matches it longest (None: a tool)."""
    best = None
    for i, (_, prefixes) in enumerate(ORDER):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


def test_each_layer_imports_only_the_layers_below_it():
    upward = []
    for path in [*(ROOT / "fedbench").rglob("*.py"), *(ROOT / "methods").rglob("*.py")]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        mine = layer(module)
        if mine is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            upward += [(module, n) for n in names if layer(n) is not None and layer(n) < mine]
    assert not upward, upward
    described = Path(ROOT / "fedbench" / "__init__.py").read_text()
    assert all(name in described for _, prefixes in ORDER for name in prefixes)
