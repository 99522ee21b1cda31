"""The table of what each method shares and keeps is read from the modules, so a reading's groups
can be checked against it: the cases the first publication's reading got wrong come out right."""
from __future__ import annotations

from fedbench.report.methods_table import method_rows, write_methods_table


def _rows():
    return {r["method"]: r for r in method_rows(["lgfedavg", "fedbabu", "fedrod", "fedper", "ditto", "local",
                                                 "fedavg", "fedbsd", "perfedavg"])}


def test_lgfedavg_shares_the_head_and_keeps_the_backbone():
    r = _rows()["lgfedavg"]
    assert r["uploaded and averaged"] == "head (uniform)" and r["kept on the client"] == "backbone"


def test_fedbabu_fine_tunes_before_evaluation_and_fedrod_keeps_a_head():
    rows = _rows()
    assert rows["fedbabu"]["trained locally"] == "backbone" and rows["fedbabu"]["kept on the client"] == "nothing"
    assert rows["fedbabu"]["evaluated"] == "global model (5 epochs of fine-tuning)"
    assert rows["fedrod"]["kept on the client"] == "phead" and "own prediction rule" in rows["fedrod"]["evaluated"]
    assert rows["perfedavg"]["evaluated"] == "global model (its own adapt step)"


def test_what_is_kept_and_evaluated():
    rows = _rows()
    assert rows["fedper"]["kept on the client"] == "head" and rows["fedper"]["uploaded and averaged"] == "backbone (samples)"
    assert rows["fedbsd"]["kept on the client"] == "head, backbone"
    assert rows["ditto"]["kept on the client"] == "a personal model" and rows["ditto"]["evaluated"] == "personal model"
    assert rows["local"]["uploaded and averaged"] == "nothing" and rows["fedavg"]["evaluated"] == "global model"


def test_written_for_registered_methods_only(tmp_path):
    assert write_methods_table(["not_a_method"], tmp_path / "m.md") == []
    path, = write_methods_table(["fedper", "not_a_method"], tmp_path / "m.md")
    assert "| fedper | backbone (samples) | mean weighted by train samples | head |" in path.read_text() and "not_a_method" not in path.read_text()


def test_methods_with_their_own_server_step_say_what_they_upload_and_what_the_server_does():
    """Not 'nothing' for methods that share no averaged part but upload models, deltas or prototypes."""
    rows = {r["method"]: r for r in method_rows(["fedfomo", "pfedhn", "fedproto", "scaffold", "pfedme", "local"])}
    assert rows["fedfomo"]["uploaded and averaged"] == "whole model, fomo_w, fomo_ids (its own server step)"
    assert rows["fedfomo"]["server step"].startswith("Keep each uploading client's latest model")
    assert rows["pfedhn"]["uploaded and averaged"] == "hn_delta (its own server step)"
    assert rows["pfedhn"]["evaluated"] == "the model the server sends the client"
    assert rows["fedproto"]["uploaded and averaged"].startswith("proto") and rows["fedproto"]["evaluated"] != \
        rows["pfedhn"]["evaluated"]   # it keeps its whole model; the server sends prototypes
    assert rows["scaffold"]["uploaded and averaged"] == "whole model, scaffold_dc (its own server step)"
    assert rows["pfedme"]["server step"].endswith("then methods/pfedme.py `server_update`")
    assert rows["local"]["server step"] == "none"


def test_every_cell_is_one_markdown_cell():
    """A formula's '|' (FedAMP's ||w - u_i||^2) is escaped: every row has as many cells as the header."""
    import methods

    for r in method_rows(methods.available()):
        assert all("|" not in v.replace("\\|", "") for v in r.values()), r
