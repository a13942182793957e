"""ModelRecord: what a checkpoint says about its model; posekit 0.1 records; bad records."""

from __future__ import annotations

import pytest

from posekit import CheckpointError, KeypointSchema
from posekit.codecs import build_codec
from posekit.codecs.paf import PafCodec
from posekit.models.record import FORMAT, ModelRecord
from posekit.structures import InputSpec

SCHEMA = KeypointSchema.named("coco_person_neck")


def _record() -> ModelRecord:
    spec = InputSpec(height=320)
    codec = PafCodec(SCHEMA, sigma=5.0)
    return ModelRecord("bottomup", "paf_tiny", SCHEMA, codec, spec, {"num_refinement_stages": 1})


def test_round_trip_through_checkpoint_entries():
    record = _record()
    entries = record.to_dict()
    assert entries["format"] == FORMAT and entries["codec"]["name"] == "paf"
    back = ModelRecord.from_checkpoint({**entries, "model": {}}, "x.pt")
    assert back == record


def test_a_posekit_0_1_record_reads_as_a_bottom_up_paf_model():
    old = {
        "format": FORMAT,
        "version": "0.1.0",
        "model_name": "lwop_mobilenet",
        "num_refinement_stages": 2,
        "schema": SCHEMA.to_dict(),
        "codec": {"codec": "paf", "stride": 8, "sigma": 7.0, "paf_width": 1.0},
        "input_size": [368, 368],
        "model": {},
    }
    record = ModelRecord.from_checkpoint(old, "old.pt")
    assert record.family == "bottomup" and record.codec == PafCodec(SCHEMA)
    assert record.model_options == {"num_refinement_stages": 2}
    assert record.input_spec == InputSpec(height=368)  # posekit's PAF preprocessing


@pytest.mark.parametrize("name", ["udp", "simcc", "rle"])
def test_top_down_records_written_before_reach_keep_the_codec_they_were_trained_with(name):
    """A top-down codec record without ``reach`` (posekit before it) reads with reach 0: the
    model learned only keypoints inside its crops; a record with it keeps its value."""
    coco = KeypointSchema.named("coco_person")
    codec = build_codec(name, coco)
    entries = ModelRecord("topdown", "topdown_tiny", coco, codec, InputSpec(), {}).to_dict()
    assert entries["codec"]["reach"] == 0.2
    assert ModelRecord.from_dict(entries, "new.pt").codec == codec
    old = {**entries, "codec": {k: v for k, v in entries["codec"].items() if k != "reach"}}
    assert ModelRecord.from_dict(old, "old.pt").codec == build_codec(name, coco, reach=0.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"codec": {"name": "hourglass"}}, "unknown codec .hourglass."),
        ({"codec": {"name": "paf", "sigmaa": 2}}, r"unknown parameter\(s\) \['sigmaa'\]"),
        ({"family": "sideways"}, "unknown model family 'sideways'"),
        ({"family": "topdown"}, "codec 'paf' is a bottomup codec, not topdown"),
        ({"input": {"height": 300, "colour": "BGR"}}, r"unknown keys \['colour'\]"),
        ({"schema": {"name": "x"}}, "missing required key 'keypoints'"),
    ],
)
def test_bad_records_name_the_file_and_the_entry(change, message):
    entries = {**_record().to_dict(), "model": {}, **change}
    with pytest.raises(CheckpointError, match=message) as err:
        ModelRecord.from_checkpoint(entries, "runs/x/best.pt")
    assert "runs/x/best.pt" in str(err.value)


def test_missing_entries_are_listed():
    with pytest.raises(CheckpointError, match=r"lacks the entries \['codec', 'model'\]"):
        ModelRecord.from_checkpoint({"model_name": "paf_tiny", "schema": {}}, "y.pt")
