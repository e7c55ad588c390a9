"""The sample file: a round trip keeps values, types and NULLs, and loading never needs pickle."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from apps.training.text_column import TextColumn
from apps.training.trainer import SampleData, load_sample, save_sample


def test_round_trip(tmp_path):
    sample = SampleData(
        columns={
            "age": np.array([31.0, np.nan, 45.5]),
            "city": np.array(["beijing", None, "上海"], dtype=object),
            "tier": np.array(["1", "1", ""], dtype=object),
            "count": np.array([1, 2, 3]),
        },
        label=np.array([1.0, 0.0, 1.0]),
    )
    path = tmp_path / "sample.npz"
    save_sample(path, sample)
    loaded = load_sample(path)
    assert list(loaded.columns) == ["age", "city", "tier", "count"]
    np.testing.assert_array_equal(loaded.columns["age"], sample.columns["age"])
    assert loaded.columns["city"].to_objects().tolist() == ["beijing", None, "上海"]
    assert loaded.columns["tier"].to_objects().tolist() == ["1", "1", ""]  # an empty string is not NULL
    assert loaded.columns["count"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(loaded.label, sample.label)
    assert loaded.label.dtype == np.float64
    # Text stays dictionary-encoded: a million rows of a few categories cost int32 codes, not strings.
    tier = loaded.columns["tier"]
    assert tier.values.tolist() == ["1", ""] and tier.codes.dtype == np.int32 and tier.codes.tolist() == [0, 0, 1]


def test_a_text_column_round_trips_as_it_is(tmp_path):
    column = TextColumn.encode(["x", None, "y", "x"])
    save_sample(tmp_path / "s.npz", SampleData({"c": column}, np.zeros(4)))
    loaded = load_sample(tmp_path / "s.npz").columns["c"]
    assert loaded.values.tolist() == ["x", "y"] and loaded.codes.tolist() == [0, -1, 1, 0]


def test_file_holds_no_object_arrays(tmp_path):
    path = tmp_path / "sample.npz"
    save_sample(path, SampleData({"c": np.array(["a", None], dtype=object)}, np.array([0.0, 1.0])))
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)


def test_a_pickled_file_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __format__=np.array(1), __columns__=np.array(["c"]), __label__=np.zeros(1),
             t0_values=np.array([{"x": 1}], dtype=object), t0_codes=np.zeros(1, np.int32))  # fmt: skip
    with pytest.raises(ValueError, match="allow_pickle"):
        load_sample(path)


def test_not_a_sample_file(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a sample file"):
        load_sample(path)


def test_save_replaces_whole_files_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sample.npz"
    save_sample(path, SampleData({"x": np.arange(3.0)}, np.zeros(3)))
    with pytest.raises(ValueError):
        save_sample(path, SampleData({"x": np.arange(2.0)}, np.array(["not", "a number"])))
    assert load_sample(path).columns["x"].tolist() == [0.0, 1.0, 2.0]
    save_sample(path, SampleData({"y": np.array(["b"], dtype=object)}, np.ones(1)))
    assert [p.name for p in tmp_path.iterdir()] == ["sample.npz"]
    assert zipfile.is_zipfile(path) and load_sample(path).columns["y"].to_objects().tolist() == ["b"]
