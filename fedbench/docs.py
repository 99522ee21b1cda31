"""`python -m fedbench.docs`: README's generated blocks, rewritten from the code so they never go stale
(a test fails when README's differ): the method table (paper links, what each shares, keeps, does per
minibatch, evaluates and gives a newcomer; from methods/ and their yamls, fedbench.report.methods_table) and the presets
(conf/experiment/*.yaml, their first sentence). Each block sits between `<!-- begin:NAME -->` and
`<!-- end:NAME -->`."""
from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def methods_block() -> str:
    import methods
    from fedbench.report.methods_table import method_rows

    rows = method_rows(methods.available())
    lines = ["| method | paper | uploaded and averaged | kept on the client | per minibatch | evaluated | a newcomer |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cls = methods.get(r["method"])
        paper = cls.__dict__.get("paper", "")
        title = " ".join((sys.modules[cls.__module__].__doc__ or "").split()).split(" (", 1)[0].split(":")[0]
        link = f"[{title}]({paper})" if paper else title
        lines.append(f"| `{r['method']}` | {link} | {r['uploaded and averaged']} | {r['kept on the client']} | "
                     f"{r['per minibatch']} | {r['evaluated']} | {r['newcomer']} |")
    return "\n".join(lines)


def presets_block() -> str:
    from fedbench.help import CONF, describe

    lines = ["| preset | what it is |", "|---|---|"]
    lines += [f"| `{p.stem}` | {describe(p)} |" for p in sorted((CONF / "experiment").glob("*.yaml"))]
    return "\n".join(lines)


BLOCKS = {"methods": methods_block, "presets": presets_block}


def rewrite(text: str) -> str:
    """`text` with every generated block replaced by today's."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- begin:{name} -->\n).*?(<!-- end:{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"fedbench.docs: README has no <!-- begin:{name} --> ... <!-- end:{name} --> block")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main() -> int:
    from fedbench.files import atomic_write

    atomic_write(README, rewrite(README.read_text(encoding="utf-8")))
    print(f"fedbench.docs: rewrote {', '.join(BLOCKS)} in {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
