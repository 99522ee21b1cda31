"""fedbench.report.cites: a reading's measured numbers must be printed in the files its sentences cite,
and its wording must not claim what a failed test cannot (the audit of publication v2 found both)."""
from pathlib import Path

import pytest

from fedbench.report.cites import check_text, main

TABLE = """| method | acc | diff vs fedavg |
|---|---|---|
| fedbsd | 88.94 ± 0.26 | +2.10 [+1.20, +3.00] |
| fedper | 86.84 ± 1.11 | -0.50 [-1.40, +0.40] |
"""


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "t.md").write_text(TABLE)
    (tmp_path / "tables" / "compute.md").write_text("fedbsd 1.36x\n")
    return tmp_path


def texts(findings) -> list[str]:
    return [f.text for f in findings]


def test_a_number_printed_in_the_cited_table_passes(base):
    assert check_text("FedBSD reaches 88.94 ([leaderboard](tables/t.md)).\n", base) == []


def test_a_number_not_in_the_cited_table_is_found_even_when_a_longer_one_contains_it(base):
    found = check_text("FedBSD reaches 88.9 ([leaderboard](tables/t.md)), 8.94 rounded.\n", base)
    assert texts(found) == ["8.94, 88.9 not in tables/t.md"]


def test_a_number_in_another_table_than_the_cited_one_is_found(base):
    found = check_text("FedBSD spends 1.36x FedAvg's compute ([leaderboard](tables/t.md)).\n", base)
    assert len(found) == 1 and "1.36 not in tables/t.md" in found[0].text


def test_a_sign_must_match_the_cell_and_an_unsigned_number_matches_either(base):
    ok = "FedPer is 0.50 points below FedAvg ([differences](tables/t.md)), FedBSD +2.10 above.\n"
    assert check_text(ok, base) == []
    flipped = "FedPer is +0.50 above FedAvg ([differences](tables/t.md)); FedBSD \u22122.10.\n"
    assert texts(check_text(flipped, base)) == ["+0.50 not in tables/t.md", "-2.10 not in tables/t.md"]


def test_a_sentence_cites_the_last_link_of_its_paragraph_and_a_new_paragraph_starts_empty(base):
    inherited = "In [the differences](tables/t.md), FedBSD is +2.10 above. FedPer is 0.50 below.\n"
    assert check_text(inherited, base) == []
    orphan = "In [the differences](tables/t.md), FedBSD is +2.10 above.\n\nFedPer is 0.50 below.\n"
    found = check_text(orphan, base)
    assert [f.line for f in found] == [3] and "cites no file" in found[0].text


def test_each_list_item_and_heading_is_a_paragraph_of_its_own(base):
    text = "## Results in [the table](tables/t.md)\n- FedBSD reaches 88.94 ([t](tables/t.md)).\n- FedPer 86.84.\n"
    assert texts(check_text(text, base)) == ['86.84 in "- FedPer 86.84." cites no file']


def test_code_tables_quotes_and_generated_blocks_are_not_checked(base):
    text = ("```bash\npython -m fedbench lr=0.125\n```\n| x | 77.77 |\n> 4.18 h of sittings\n"
            "<!-- headline:fmnist -->\nacross 12.34 lines\n<!-- /headline:fmnist -->\nCounts: 27 methods, 5 seeds.\n")
    assert check_text(text, base) == []
    assert texts(check_text("A loose 12.34.\n", base)) == ['12.34 in "A loose 12.34." cites no file']


def test_a_quoted_number_may_cite_its_web_address(base):
    text = "PFLlib reports 99.12 ([PFLlib](https://github.com/TsingZ0/PFLlib)) at lr 0.005.\n"
    assert check_text(text, base) == []


@pytest.mark.parametrize("sentence", ["FedPer is at the same level as FedAvg.", "Ditto is on par with Local.",
                                      "FedBSD is significantly better than FedAvg."])
def test_wording_a_failed_test_cannot_support_is_flagged(base, sentence):
    assert len(check_text(sentence + "\n", base)) == 1


def test_significance_with_its_test_named_is_allowed(base):
    assert check_text("FedBSD is significantly above FedAvg (paired t-test, Holm).\n", base) == []


def test_cli_exit_status_says_clean_findings_or_missing_files(base, capsys):
    reading = base / "README.md"
    reading.write_text("FedBSD reaches 88.94 ([leaderboard](tables/t.md)).\n")
    assert main([str(reading)]) == 0
    reading.write_text("FedBSD reaches 89.94 ([leaderboard](tables/t.md)).\n")
    assert main([str(reading)]) == 1
    assert "line 1: 89.94 not in tables/t.md" in capsys.readouterr().out
    reading.write_text("FedBSD reaches 88.94 ([leaderboard](tables/gone.md)).\n")
    assert main([str(reading)]) == 2
    assert "tables/gone.md" in capsys.readouterr().err
