"""experiment.json: one typed record written by reproduce and read by the report."""

from __future__ import annotations

import json
import math

import pytest

from lowdose.core.errors import LowdoseInputError
from lowdose.data.attributes import DatasetAttrs
from lowdose.data.experiment_record import ExperimentRecord, read_experiment_record

# The keys the first version of reproduce wrote (before the typed record existed).
FIRST_VERSION = {
    "name": "ct24",
    "paper_table": "IV",
    "scale": "quick",
    "baseline_target_db": 24.44,
    "achieved_psnr_db": 24.437,
    "dataset": "ct24/data/ct24-abc.h5",
    "dataset_attrs": {
        "modality": "ct",
        "noise_model": "gaussian",
        "scaling_rule": "dataset_max",
        "scaling_offset": 1024.0,
        "raw_units": "hu",
        "hu_window": "-1000..1000",
    },
    "config": {"name": "ct24", "scale": "quick"},
    "environment": {"cpu": "test CPU", "torch": "2.13.0"},
    "wall_times_s": {"dataset_s": 1.5, "total_s": 9.0},
}


def test_a_file_of_the_first_version_reads_typed(tmp_path):
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(FIRST_VERSION))
    record = read_experiment_record(path)
    assert record.name == "ct24" and record.paper_table == "IV" and record.scale == "quick"
    assert record.baseline_target_db == 24.44 and record.achieved_psnr_db == 24.437
    assert record.dataset_attrs.is_ct_hu and record.dataset_attrs.scaling_offset == 1024.0
    assert record.dataset_attrs.extra["hu_window"] == "-1000..1000"
    assert record.wall_times_s == {"dataset_s": 1.5, "total_s": 9.0}


def test_round_trip_keeps_every_key_in_the_first_versions_order(tmp_path):
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(FIRST_VERSION))
    record = read_experiment_record(path)
    path.write_text(record.to_json())
    written = json.loads(path.read_text())
    assert list(written) == list(FIRST_VERSION)
    assert read_experiment_record(path).to_json() == record.to_json()  # NaN-safe comparison


def test_missing_keys_take_defaults_and_wall_times_can_be_added(tmp_path):
    record = ExperimentRecord.from_json({"name": "x"}, where="test")
    assert record.paper_table is None and record.scale is None and record.dataset_attrs is None
    assert math.isnan(record.baseline_target_db) and record.environment == {}
    timed = record.with_wall_times({"total_s": 3.0})
    assert timed.wall_times_s == {"total_s": 3.0} and record.wall_times_s == {}
    attrs = DatasetAttrs(modality="xray", noise_model="poisson", scaling_rule="per_image_max")
    typed = ExperimentRecord(name="y", dataset_attrs=attrs)
    again = ExperimentRecord.from_json(json.loads(typed.to_json()), where="t").dataset_attrs
    assert json.dumps(again.to_hdf5()) == json.dumps(attrs.to_hdf5())  # NaN-safe comparison


@pytest.mark.parametrize(("text", "message"), [("{not json", "not valid JSON"), ("[1]", "object")])
def test_a_malformed_file_is_a_one_line_error_naming_it(tmp_path, text, message):
    path = tmp_path / "experiment.json"
    path.write_text(text)
    with pytest.raises(LowdoseInputError, match=message) as error:
        read_experiment_record(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
