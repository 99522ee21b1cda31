"""`python -m fedbench.report.cites READING.md [...]`: does a written reading say only what its tables say?

A published reading is prose written by hand from the generated tables; an audit of the second
publication found sentences its tables did not support. This check makes two of its rules mechanical:

  every measured number (one with a decimal point: 88.94, +1.20, 4.33x, 0.003) in a sentence is
  written, as printed, in a file the sentence cites: a Markdown link to a file beside the reading
  (`[findings](tables/findings_final.md)`); a sentence without a link of its own cites what the
  last link before it in its paragraph named (a paragraph may open "In [the differences](...), ...");
  a number quoted from outside (another project's published table) cites its web address, which is
  not read: such a sentence's numbers not found in its local files are taken as quoted;
  no wording the tests cannot support: "at the same level", "on par", "comparable to", "equivalent to",
  "significantly" without a test named in the sentence (a test's name: t-test, Holm, Friedman, Nemenyi,
  Wilcoxon, or a link), since "not separated" is what a failed test allows.

Left out of the check: code blocks, tables (lines starting with '|'), blocks the report generates
(between `<!-- headline:NAME -->` and `<!-- /headline:NAME -->`) and quotes ('>'), whose numbers come from
the tables themselves or from elsewhere (a sitting's wall time). Integers ("5 seeds", "27 methods") are
counts, not measurements, and are not checked.
Exit status: 0 when every number is found and no wording is flagged, 1 otherwise (one line per finding),
2 when a reading or a cited file is missing.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

NUMBER = re.compile(r"(?<![\w.])([+\-\u2212]?)(\d+\.\d+)(?![\w.]*\d)")
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")
SENTENCE_END = re.compile(r"(?<=[.;!?])\s+(?=[A-Z(\[`*])")
GENERATED = re.compile(r"<!-- headline:(\w+) -->.*?<!-- /headline:\1 -->", re.S)
UNSUPPORTED = ("at the same level", "on par", "comparable to", "equivalent to")
ITEM = re.compile(r"\s*(?:[-*+]|\d+\.|#+)\s")
EXTERNAL = ("http:", "https:")
TESTS = ("t-test", "holm", "friedman", "nemenyi", "wilcoxon", "](")


@dataclass(frozen=True)
class Finding:
    line: int
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}"


def paragraphs(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each prose paragraph: no code, tables, quotes or generated blocks."""
    text = GENERATED.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out, block, start, fenced = [], [], 0, False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            line = ""
        prose = not fenced and line.strip() and not line.lstrip().startswith(("|", ">", "<!--"))
        if prose and block and ITEM.match(line):  # a list item or a heading is a paragraph of its own
            out.append((start, " ".join(block)))
            block, start = [], 0
        if prose:
            start = start or number
            block.append(line.strip())
        elif block:
            out.append((start, " ".join(block)))
            block, start = [], 0
    if block:
        out.append((start, " ".join(block)))
    return out


def numbers_in(text: str, values: bool = True) -> set[str]:
    """The decimal numbers written in `text`: each with its sign where it has one ('+1.20', '-0.50'; a
    Unicode minus reads as '-'), and (values=True, for a cited file) each value unsigned as well, so that
    an unsigned number in a reading ("2.10 points below") matches a signed cell, and a signed one only
    a cell of the same sign."""
    out = set()
    for m in NUMBER.finditer(text):
        sign = m.group(1).replace("\u2212", "-")
        out.add(sign + m.group(2))
        if values:
            out.add(m.group(2))
    return out


def check_text(text: str, base: Path) -> list[Finding]:
    """The findings for a reading `text` whose links are relative to `base`."""
    findings, files = [], {}

    def cited(path: str) -> set[str]:
        if path not in files:
            target = (base / path).resolve()
            if not target.is_file():
                raise FileNotFoundError(f"cites a file that is not there: {path}")
            files[path] = numbers_in(target.read_text(encoding="utf-8"))
        return files[path]

    for line, paragraph in paragraphs(text):
        sources: list[str] = []
        for sentence in SENTENCE_END.split(paragraph):
            sources = LINK.findall(sentence) or sources
            local = [p for p in sources if not p.startswith(EXTERNAL)]
            lowered = sentence.lower()
            findings += [Finding(line, f"'{w}' in \"{sentence[:80]}\": say 'not separated' where a test did not "
                                       f"separate") for w in UNSUPPORTED if w in lowered]
            if "significant" in lowered and not any(t in lowered for t in TESTS):
                findings.append(Finding(line, f"'significant' without its test in \"{sentence[:80]}\""))
            prose = LINK.sub("", sentence)
            wanted = numbers_in(prose, values=False)
            if wanted and not sources:
                findings.append(Finding(line, f"{', '.join(sorted(wanted))} in \"{sentence[:80]}\" cites no file"))
                continue
            known = set().union(*(cited(s) for s in local)) if wanted else set()
            missing = sorted(wanted - known)
            if missing and len(local) == len(sources):
                findings.append(Finding(line, f"{', '.join(missing)} not in {', '.join(sources)}"))
    return findings


def main(argv: list[str] | None = None) -> int:
    paths = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m fedbench.report.cites READING.md [...]", file=sys.stderr)
        return 2
    bad = 0
    for path in paths:
        try:
            findings = check_text(path.read_text(encoding="utf-8"), path.parent)
        except (FileNotFoundError, IsADirectoryError) as err:
            print(f"fedbench.report.cites: {path}: {err}", file=sys.stderr)
            return 2
        for f in findings:
            print(f"{path}: {f}")
        bad += len(findings)
    print(f"fedbench.report.cites: {bad} finding(s) in {len(paths)} reading(s)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
