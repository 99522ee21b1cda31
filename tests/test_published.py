"""The committed publication (results/published/) agrees with itself: what README.md and the published
reading show as the headline is the generated table, byte for byte, so no number on a first screen was
copied or edited by hand."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fedbench.publish import PUBLISHED, STUDIES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / PUBLISHED
DOCUMENTS = [ROOT / "README.md", RESULTS / "README.md"]


def block(text: str, study: str) -> str | None:
    found = re.search(rf"<!-- headline:{study} -->\n(.*?)<!-- /headline:{study} -->", text, re.S)
    return found.group(1) if found else None


@pytest.mark.parametrize("study", [s.name for s in STUDIES])
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_each_headline_block_is_the_generated_table(document, study):
    table = RESULTS / "tables" / f"headline_{study}.md"
    shown = block(document.read_text(encoding="utf-8"), study)
    assert shown is not None, f"{document.name} has no headline block for {study}"
    assert shown == table.read_text(encoding="utf-8"), (
        f"{document.relative_to(ROOT)}'s {study} headline differs from {table.relative_to(ROOT)}: "
        "run `python -m fedbench.publish --report-only`, never edit it by hand")
