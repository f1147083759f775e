"""A final record's status is a Status from the moment it is read: a bad one is one ValueError naming the field,
its JSON stays the plain text the run folder holds, and what reads it compares Status values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resnet_core.experiments import lesion_notes
from resnet_core.experiments.lesion import LesionResult
from resnet_core.runs import store as runstore
from resnet_core.training.records import FinalRecord, Status, record_from_dict

OLD_RUN = Path(__file__).resolve().parent / "fixtures" / "run-v1"  # a finished run folder of the first format
FINAL_LINE = json.loads((OLD_RUN / "metrics.jsonl").read_text().splitlines()[-1])


def test_the_status_read_is_a_status_and_written_back_as_the_same_text():
    record = FinalRecord.from_dict(FINAL_LINE)
    assert record.status is Status.FINISHED
    written = record.to_dict()
    assert written == FINAL_LINE and type(written["status"]) is str
    assert json.loads(json.dumps(written))["status"] == "finished"


@pytest.mark.parametrize("status", ["bogus", "Finished", 3, None, ["finished"]])
def test_a_bad_status_is_one_value_error_naming_the_field(status):
    line = dict(FINAL_LINE, status=status)
    for read in (FinalRecord.from_dict, record_from_dict):
        with pytest.raises(ValueError) as caught:
            read(line)
        assert str(caught.value) == ("final record.status must be one of queued, running, finished, stopped, "
                                     f"diverged, failed, interrupted; got {status!r}")


def test_the_lesion_note_names_the_step_of_a_stopped_run(tmp_path):
    run = Path(shutil.copytree(OLD_RUN, tmp_path / "run-v1"))
    stopped = dict(FINAL_LINE, status="stopped")
    lines = (run / "metrics.jsonl").read_text().splitlines()[:-1] + [json.dumps(stopped)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps(dict(status, status="stopped", final=stopped)))
    info = runstore.read_run(run)
    assert info.final.status is Status.STOPPED
    row = LesionResult("run-v1", skip=True, baseline_acc=0.12, baseline_loss=2.2, blocks=[], test_images=50,
                       seconds=0.1)
    assert lesion_notes.compare_with_stored(row, info) == (
        "Intact accuracy measured now: 12.0% on the first 50 test images; the run's own final test, stopped at step "
        "6: 12.0% on its first 50 test images: the same images, the same accuracy.")
    finished = runstore.read_run(OLD_RUN)
    assert "stopped" not in lesion_notes.compare_with_stored(row, finished)
