"""Time-series loading (CSV and arrays), the regular grid, gap filling, windows and score mapping."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from aekit.data.series import (
    Series,
    as_series,
    check_window,
    parse_freq,
    read_series_csv,
    sliding_windows,
    window_scores_to_points,
)
from aekit.errors import ConfigError, DataError, DataFileError

NAB = (
    Path(os.environ.get("AEKIT_DATA_HOME") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
    / "nab/data/realKnownCause"
)
T0 = np.datetime64("2024-01-01T00:00:00", "ns")
MIN = np.timedelta64(60, "s")


def write(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def minutes(*ks: int) -> list[str]:
    return [str(T0 + k * MIN).replace("T", " ")[:19] for k in ks]


def csv_text(ks: list[int], values: list[str], header: str = "timestamp,value") -> str:
    return header + "\n" + "".join(f"{t},{v}\n" for t, v in zip(minutes(*ks), values))


# ----------------------------------------------------------------------------- reading CSV files


def test_read_basic(tmp_path):
    path = write(tmp_path, csv_text([0, 1, 2, 3], ["1.5", "2", "3", "4e0"]))
    s = read_series_csv(path)
    assert isinstance(s, Series)
    assert s.timestamps.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(s.timestamps, T0 + np.arange(4) * MIN)
    assert s.values.dtype == np.float64 and s.values.shape == (4, 1)
    np.testing.assert_array_equal(s.values[:, 0], [1.5, 2, 3, 4])
    assert s.columns == ["value"] and s.source == str(path)
    assert s.step == np.timedelta64(60, "s")
    assert (s.n, len(s), s.n_channels) == (4, 4, 1)
    np.testing.assert_array_equal(s.positions, np.arange(4))
    assert s.positions.dtype == np.int64
    assert not s.gap.any() and not s.filled.any() and s.n_duplicates == 0 and s.n_unsorted == 0
    text = repr(s)
    assert "n=4" in text and "step=1min" in text and "2024-01-01" in text


@pytest.mark.parametrize(
    "stamps",
    [
        ["2024-01-01T00:00:00", "2024-01-01T00:01:00"],
        ["2024-01-01 00:00:00.000000", "2024-01-01 00:01:00.000000"],
        ["2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"],  # UTC suffix is dropped
        ["2024-01-01 00:00", "2024-01-01 00:01"],
    ],
)
def test_timestamp_forms(tmp_path, stamps):
    path = write(tmp_path, "timestamp,value\n" + "".join(f"{t},{i}\n" for i, t in enumerate(stamps)))
    np.testing.assert_array_equal(read_series_csv(path).timestamps, T0 + np.arange(2) * MIN)


def test_dates_only_and_fractional_seconds(tmp_path):
    path = write(tmp_path, "date,value\n2024-01-01,1\n2024-01-02,2\n2024-01-04,4\n")
    s = read_series_csv(path)
    assert s.step == np.timedelta64(1, "D") and s.n == 4 and s.filled.tolist() == [False, False, True, False]
    path = write(tmp_path, "time,v\n2024-01-01 00:00:00.25,1\n2024-01-01 00:00:00.5,2\n", "f.csv")
    s = read_series_csv(path)
    assert s.step == np.timedelta64(250, "ms") and s.timestamps[0] == T0 + np.timedelta64(250, "ms")


def test_timezone_offset_rejected(tmp_path):
    path = write(tmp_path, "timestamp,value\n2024-01-01T00:00:00+01:00,1\n2024-01-01T00:01:00+01:00,2\n")
    with pytest.raises(DataFileError, match=r"line 2, column 'timestamp'.*timezone offset"):
        read_series_csv(path)


def test_bad_and_empty_timestamps(tmp_path):
    path = write(tmp_path, "timestamp,value\n2024-01-01 00:00:00,1\n2024/01/01 00:01:00,2\n")
    with pytest.raises(DataFileError, match=r"line 3, column 'timestamp': '2024/01/01 00:01:00' is not a date"):
        read_series_csv(path)
    path = write(tmp_path, "timestamp,value\n2024-01-01 00:00:00,1\n,2\n", "e.csv")
    with pytest.raises(DataFileError, match=r"line 3.*timestamp is empty"):
        read_series_csv(path)


def test_auto_timestamp_column(tmp_path):
    # a column named Time (any case), not first
    s = read_series_csv(write(tmp_path, "a,Time,b\n1,2024-01-01 00:00:00,2\n3,2024-01-01 00:01:00,4\n"))
    assert s.columns == ["a", "b"] and s.timestamps is not None
    np.testing.assert_array_equal(s.values, [[1, 2], [3, 4]])
    # first column of dates under another name
    s = read_series_csv(write(tmp_path, "when,x\n2024-01-01,1\n2024-01-02,2\n", "w.csv"))
    assert s.columns == ["x"] and s.timestamps[0] == T0
    # no dates anywhere: every column is a channel, positions only
    s = read_series_csv(write(tmp_path, "a,b\n1,2\n3,4\n5,6\n", "n.csv"))
    assert s.timestamps is None and s.step is None and s.columns == ["a", "b"]


def test_explicit_timestamp_column(tmp_path):
    path = write(tmp_path, "id,when,v\n7,2024-01-01,1\n8,2024-01-02,2\n")
    s = read_series_csv(path, timestamp_column="when")
    assert s.columns == ["id", "v"] and s.timestamps[1] == T0 + np.timedelta64(1, "D")
    s = read_series_csv(path, timestamp_column=1, columns=["v"])
    assert s.columns == ["v"]
    s = read_series_csv(write(tmp_path, "timestamp,v\n0,1\n1,2\n", "t.csv"), timestamp_column=None)
    assert s.timestamps is None and s.columns == ["timestamp", "v"] and s.n == 2
    with pytest.raises(ConfigError, match=r"no column 'stamp'; available columns: \['id', 'when', 'v'\]"):
        read_series_csv(path, timestamp_column="stamp")
    with pytest.raises(ConfigError, match="out of range"):
        read_series_csv(path, timestamp_column=5)


def test_numeric_time_column_is_positions(tmp_path):
    s = read_series_csv(write(tmp_path, "time,v\n10,1\n11,2\n13,4\n12,3\n"))
    assert s.timestamps.dtype == np.int64 and s.step == 1 and s.n_unsorted == 1
    np.testing.assert_array_equal(s.timestamps, [10, 11, 12, 13])
    np.testing.assert_array_equal(s.values[:, 0], [1, 2, 3, 4])
    s = read_series_csv(write(tmp_path, "time,v\n0,1\n2,2\n6,4\n", "g.csv"))
    np.testing.assert_array_equal(s.timestamps, [0, 2, 4, 6])
    np.testing.assert_array_equal(s.values[:, 0], [1, 2, 3, 4])
    assert s.filled.tolist() == [False, False, True, False]
    with pytest.raises(DataFileError, match=r"line 3.*1.5 is not a whole number"):
        read_series_csv(write(tmp_path, "time,v\n0,1\n1.5,2\n", "f.csv"))
    with pytest.raises(DataFileError, match=r"line 3, column 'time': 'abc' is neither a number nor a date"):
        read_series_csv(write(tmp_path, "time,v\n0,1\nabc,2\n", "a.csv"))
    with pytest.raises(DataFileError, match=r"line 3, column 'time': the timestamp is empty"):
        read_series_csv(write(tmp_path, "time,v\n0,1\n,2\n", "m.csv"))
    with pytest.raises(ConfigError, match="numeric positions take an int freq"):
        read_series_csv(write(tmp_path, "time,v\n0,1\n1,2\n", "p.csv"), freq="5min")


def test_columns_pick_channels(tmp_path):
    path = write(tmp_path, "timestamp,a,b,c\n2024-01-01,1,2,3\n2024-01-02,4,5,6\n")
    s = read_series_csv(path, columns=["c", "a"])
    assert s.columns == ["c", "a"]
    np.testing.assert_array_equal(s.values, [[3, 1], [6, 4]])
    with pytest.raises(ConfigError, match=r"no column 'd'; available columns: \['a', 'b', 'c'\]"):
        read_series_csv(path, columns=["d"])
    with pytest.raises(ConfigError, match="is the time column"):
        read_series_csv(path, columns=["timestamp", "a"])
    with pytest.raises(ConfigError, match="list of column names"):
        read_series_csv(path, columns="a")


def test_non_numeric_cell(tmp_path):
    path = write(tmp_path, csv_text([0, 1, 2], ["1", "2", "abc"]))
    with pytest.raises(DataFileError, match=r"s\.csv: line 4, column 'value': 'abc' is not a number"):
        read_series_csv(path)
    # blank lines do not shift the reported line number
    path = write(tmp_path, "timestamp,value\n\n" + csv_text([0, 1], ["1", "x y"]).split("\n", 1)[1], "b.csv")
    with pytest.raises(DataFileError, match=r"line 4, column 'value': 'x y' is not a number"):
        read_series_csv(path)
    path = write(tmp_path, csv_text([0, 1], ["1", "inf"]), "i.csv")
    with pytest.raises(DataFileError, match=r"line 3, column 'value': 'inf' is not a finite number"):
        read_series_csv(path)
    # a text column among several: the message says how to pick numeric columns
    path = write(tmp_path, "timestamp,a,note\n2024-01-01,1,ok\n", "t.csv")
    with pytest.raises(DataFileError, match=r"'ok' is not a number; pick the numeric columns with columns="):
        read_series_csv(path)
    assert read_series_csv(path, columns=["a"]).columns == ["a"]


def test_missing_tokens_are_gaps(tmp_path):
    path = write(tmp_path, csv_text(list(range(6)), ["0", "", "nan", "NA", "4", "5"]))
    s = read_series_csv(path, max_gap=3)
    np.testing.assert_allclose(s.values[:, 0], [0, 1, 2, 3, 4, 5])
    assert s.filled.tolist() == [False, True, True, True, False, False]
    assert not s.gap.any()


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("timestamp,value\n", "header row but no data rows"),
        ("timestamp\n2024-01-01\n2024-01-02\n", "no value columns"),
        ("timestamp,value\n2024-01-01,1,2\n", "line 2 has 3 cells but the header has 2"),
        ("timestamp,,value\n2024-01-01,1,2\n", "column 2 of the header row has no name"),
        ("timestamp,a,a\n2024-01-01,1,2\n", "names column 'a' twice"),
    ],
)
def test_bad_files(tmp_path, text, match):
    with pytest.raises(DataFileError, match=match):
        read_series_csv(write(tmp_path, text))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        read_series_csv(tmp_path / "nope.csv")
    with pytest.raises(DataFileError, match="is a folder"):
        read_series_csv(tmp_path)


def test_all_nan_column(tmp_path):
    path = write(tmp_path, "timestamp,a,b\n2024-01-01,1,\n2024-01-02,2,nan\n")
    with pytest.raises(DataError, match=r"column 'b' has no values.*drop it with columns=\['a'\]"):
        read_series_csv(path)


def test_constant_channel_allowed(tmp_path):
    s = read_series_csv(write(tmp_path, csv_text([0, 1, 2], ["7", "7", "7"])))
    np.testing.assert_array_equal(s.values[:, 0], [7, 7, 7])


def test_headerless_file(tmp_path):
    s = read_series_csv(write(tmp_path, "2024-01-01,1,2\n2024-01-02,3,4\n"))
    assert s.columns == ["x1", "x2"] and s.n == 2 and s.timestamps[0] == T0


# ----------------------------------------------------------------------------- order and duplicates


def test_unsorted_sorted_with_one_warning(tmp_path, caplog):
    path = write(tmp_path, csv_text([0, 1, 4, 2, 3, 5], ["0", "1", "4", "2", "3", "5"]))
    with caplog.at_level(logging.WARNING, logger="aekit.data.series"):
        s = read_series_csv(path)
    warnings_ = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_) == 1 and "2 rows were out of time order" in warnings_[0].getMessage()
    assert s.n_unsorted == 2
    np.testing.assert_array_equal(s.values[:, 0], np.arange(6))
    assert np.all(np.diff(s.timestamps.view(np.int64)) > 0)
    with pytest.raises(DataError, match=r"line 5 \(2024-01-01 00:02\) goes back in time from line 4.*sort=True"):
        read_series_csv(path, sort=False)


def test_duplicates_modes(tmp_path):
    path = write(tmp_path, csv_text([0, 1, 1, 1, 2], ["0", "1", "", "3", "5"]))
    mean = read_series_csv(path)  # the NaN cell does not count in the mean
    first = read_series_csv(path, duplicates="first")
    last = read_series_csv(path, duplicates="last")
    np.testing.assert_array_equal(mean.values[:, 0], [0, 2, 5])
    np.testing.assert_array_equal(first.values[:, 0], [0, 1, 5])
    np.testing.assert_array_equal(last.values[:, 0], [0, 3, 5])
    assert mean.n_duplicates == first.n_duplicates == last.n_duplicates == 2
    assert mean.n == 3 and not mean.filled.any()
    with pytest.raises(DataError, match=r"duplicate timestamp 2024-01-01 00:01 at line 3 and line 4.*'mean'"):
        read_series_csv(path, duplicates="error")
    with pytest.raises(ConfigError, match="duplicates='avg' is not one of"):
        read_series_csv(path, duplicates="avg")


def test_duplicates_after_sorting_are_stable(tmp_path):
    # rows 1 and 3 share a time: after a stable sort "first" is the earlier row in the file
    path = write(tmp_path, csv_text([1, 0, 1], ["10", "0", "30"]))
    assert read_series_csv(path, duplicates="first").values[:, 0].tolist() == [0, 10]
    assert read_series_csv(path, duplicates="last").values[:, 0].tolist() == [0, 30]


# ----------------------------------------------------------------------------- grid and gaps


def test_inserted_timestamps_and_gap_flags(tmp_path):
    # 5-minute data; 00:10 missing (a run of 1) and 00:25 .. 00:40 missing (a run of 4)
    ks = [0, 5, 15, 20, 45, 50]
    path = write(tmp_path, csv_text(ks, ["0", "5", "15", "20", "45", "50"]))
    s = read_series_csv(path, max_gap=3)
    assert s.step == np.timedelta64(5, "m") and s.n == 11
    np.testing.assert_array_equal(s.timestamps, T0 + np.arange(0, 55, 5) * MIN)
    np.testing.assert_allclose(s.values[:, 0], np.arange(0, 55, 5))  # linear interpolation
    assert s.filled.tolist() == [False, False, True, False, False, True, True, True, True, False, False]
    assert s.gap.tolist() == [False, False, False, False, False, True, True, True, True, False, False]
    assert not np.isnan(s.values).any()
    s4 = read_series_csv(path, max_gap=4)
    assert not s4.gap.any() and s4.filled.sum() == 5


def test_leading_trailing_gaps_use_nearest_value(tmp_path):
    path = write(tmp_path, csv_text(list(range(8)), ["", "", "2", "3", "4", "", "", ""]))
    s = read_series_csv(path, max_gap=2)
    np.testing.assert_array_equal(s.values[:, 0], [2, 2, 2, 3, 4, 4, 4, 4])
    assert s.filled.tolist() == [True, True, False, False, False, True, True, True]
    assert s.gap.tolist() == [False, False, False, False, False, True, True, True]


def test_gap_is_any_channel(tmp_path):
    v = np.array([[0, 0], [np.nan, 1], [2, np.nan], [3, np.nan], [4, 4]], dtype=float)
    s = as_series(v, max_gap=1)
    np.testing.assert_allclose(s.values, [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4]])
    assert s.filled.tolist() == [False, True, True, True, False]
    assert s.gap.tolist() == [False, False, True, True, False]


def test_freq_strings_and_snapping(tmp_path):
    # 00:11 and 00:14 are off the 5-minute grid: they snap to 00:10 and 00:15
    path = write(tmp_path, csv_text([0, 5, 11, 14, 20], ["0", "5", "10", "15", "20"]))
    s = read_series_csv(path, freq="5min")
    np.testing.assert_array_equal(s.timestamps, T0 + np.arange(0, 25, 5) * MIN)
    np.testing.assert_array_equal(s.values[:, 0], [0, 5, 10, 15, 20])
    # two rows snapping to one point follow the duplicates rule
    path = write(tmp_path, csv_text([0, 4, 6, 10], ["0", "4", "6", "10"]), "d.csv")
    s = read_series_csv(path, freq="5min")
    np.testing.assert_array_equal(s.values[:, 0], [0, 5, 10])
    assert s.n_duplicates == 1
    with pytest.raises(DataError, match=r"timestamps 2024-01-01 00:04 and 2024-01-01 00:06 snap to one grid point"):
        read_series_csv(path, freq="5min", duplicates="error")
    # a coarser freq than the data merges rows; a finer one inserts rows
    one_min = write(tmp_path, csv_text(list(range(4)), ["0", "1", "2", "3"]), "m.csv")
    assert read_series_csv(one_min, freq="30s").n == 7
    coarse = read_series_csv(one_min, freq="2min")  # 00:01 rounds up to 00:02, 00:03 to 00:04
    assert coarse.n == 3 and coarse.n_duplicates == 1
    np.testing.assert_array_equal(coarse.values[:, 0], [0, 1.5, 3])


def test_freq_none_keeps_times_and_interpolates_in_time():
    t = T0 + np.array([0, 1, 3, 10]) * MIN
    s = as_series([0.0, np.nan, 3.0, 10.0], t, freq=None)
    np.testing.assert_array_equal(s.timestamps, t)
    np.testing.assert_allclose(s.values[:, 0], [0, 1, 3, 10])
    assert s.step is None and s.filled.tolist() == [False, True, False, False]


@pytest.mark.parametrize(
    "freq, expected",
    [("5min", 300), ("1s", 1), ("1h", 3600), ("1d", 86400), ("h", 3600), ("1.5h", 5400), ("2 MIN", 120)],
)
def test_parse_freq(freq, expected):
    assert parse_freq(freq) == np.timedelta64(expected, "s")
    assert parse_freq("250ms") == np.timedelta64(250, "ms")


@pytest.mark.parametrize("freq", ["5 parsecs", "min5", "0s", "", "-1h"])
def test_bad_freq(freq):
    with pytest.raises(ConfigError, match="freq"):
        as_series([1.0, 2.0], [T0, T0 + MIN], freq=freq)


def test_too_fine_freq_refused():
    with pytest.raises(ConfigError, match="coarser freq"):
        as_series([1.0, 2.0], [T0, T0 + np.timedelta64(365, "D")], freq="1s")


def test_bad_max_gap():
    with pytest.raises(ConfigError, match="max_gap"):
        as_series([1.0, 2.0], max_gap=-1)


# ----------------------------------------------------------------------------- as_series


def test_as_series_does_not_modify_inputs():
    values = np.array([[3.0, 30.0], [np.nan, 10.0], [1.0, 10.0], [2.0, 20.0]])
    times = T0 + np.array([3, 0, 1, 1]) * MIN  # unsorted, with a duplicate
    v0, t0 = values.copy(), times.copy()
    s = as_series(values, times, columns=["a", "b"])
    np.testing.assert_array_equal(values, v0)
    np.testing.assert_array_equal(times, t0)
    assert s.values is not values and not np.shares_memory(s.values, values)
    assert s.n_unsorted == 3 and s.n_duplicates == 1 and s.columns == ["a", "b"]
    # grid 00:00 .. 00:03; the leading NaN takes the nearest value, 00:02 is interpolated
    np.testing.assert_allclose(s.values, [[1.5, 10], [1.5, 15], [2.25, 22.5], [3, 30]])
    assert s.filled.tolist() == [True, False, True, False] and not s.gap.any()


def test_as_series_inputs():
    s = as_series([1.0, 2.0, 3.0])
    assert s.timestamps is None and s.columns == ["x0"] and s.values.shape == (3, 1) and s.source == "array"
    s = as_series(np.ones((3, 2)), ["2024-01-01", "2024-01-02", "2024-01-03"], source="mine")
    assert s.timestamps[0] == T0 and s.step == np.timedelta64(1, "D") and s.source == "mine"
    s = as_series([1.0, 2.0], np.array(["2024-01-01T00:00", "2024-01-01T00:01"], dtype="datetime64[s]"))
    assert s.timestamps.dtype == np.dtype("datetime64[ns]") and s.step == MIN
    s = as_series([1.0, 2.0], [datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 1)])
    assert s.timestamps[1] == T0 + MIN
    s = as_series([1.0, 2.0, 4.0], [0, 1, 3])
    assert s.timestamps.tolist() == [0, 1, 2, 3] and s.step == 1
    s = as_series([1.0, 2.0, 4.0], [0, 2, 6], freq=1)
    assert s.n == 7


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(values=np.ones((2, 2, 2))), DataError, "values must be"),
        (dict(values=np.ones((0, 1))), DataError, "empty"),
        (dict(values=[1.0, np.inf]), DataError, r"values\[1, 0\] is inf"),
        (dict(values=[1.0, 2.0], timestamps=[T0]), DataError, "one entry per row"),
        (dict(values=[1.0, 2.0], timestamps=[T0, np.datetime64("NaT")]), DataError, "NaT"),
        (dict(values=[1.0, 2.0], timestamps=[0.0, 0.5]), DataError, r"timestamps\[1\]: .*0.5 is not a whole number"),
        (dict(values=[1.0, 2.0], timestamps=["2024-01-01", "Jan 2"]), DataError, r"timestamps\[1\]: 'Jan 2' is not"),
        (dict(values=[1.0], timestamps=[datetime(2024, 1, 1, tzinfo=timezone.utc)]), DataError, "timezone-aware"),
        (dict(values=np.ones((2, 2)), columns=["a"]), ConfigError, "1 names but values has 2"),
        (dict(values=np.ones((2, 2)), columns=["a", "a"]), ConfigError, "twice"),
        (dict(values=[1.0, 2.0], freq="1min"), ConfigError, "needs timestamps"),
        (dict(values=[1.0, 2.0], timestamps=[T0, T0 + MIN], freq=60), ConfigError, "with a unit"),
        (dict(values=[[1.0, np.nan], [2.0, np.nan]], columns=["a", "b"]), DataError, r"'b' has no values"),
    ],
)
def test_as_series_errors(kwargs, error, match):
    values = kwargs.pop("values")
    with pytest.raises(error, match=match):
        as_series(values, **kwargs)


def test_as_series_unsorted_error_names_row():
    with pytest.raises(DataError, match=r"row 2 \(2\) goes back in time from row 1 \(5\)"):
        as_series([1.0, 2.0, 3.0], [0, 5, 2], sort=False)


# ----------------------------------------------------------------------------- real NAB files


def _nab(name: str) -> Path:
    path = NAB / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def test_nab_machine_temperature():
    path = _nab("machine_temperature_system_failure.csv")
    s = read_series_csv(path)
    # one jump back by 3300 s (a DST repeat of 02:00 .. 02:55): 11 rows lie before an earlier row,
    # and after sorting the 12 repeated times merge
    assert s.n_unsorted == 11 and s.n_duplicates == 12
    assert s.n == 22695 - 12 and s.step == np.timedelta64(5, "m")
    assert np.all(np.diff(s.timestamps.view(np.int64)) == 300 * 10**9)
    assert not np.isnan(s.values).any() and not s.filled.any()
    with pytest.raises(DataError, match=r"line 10151 \(2014-01-07 02:00\) goes back in time.*sort=True"):
        read_series_csv(path, sort=False)
    with pytest.raises(DataError, match="duplicate timestamp 2014-01-07 02:00"):
        read_series_csv(path, duplicates="error")


def test_nab_ec2_duplicates():
    path = _nab("ec2_request_latency_system_failure.csv")
    s = read_series_csv(path, freq=None)
    assert s.n_duplicates == 11 and s.n == 4032 - 11
    t = np.datetime64("2014-03-09T03:00:00", "ns")
    i = int(np.flatnonzero(s.timestamps == t)[0])
    first = read_series_csv(path, freq=None, duplicates="first").values[i, 0]
    last = read_series_csv(path, freq=None, duplicates="last").values[i, 0]
    assert (first, last) == (44.611999999999995, 47.09)
    assert 42.3 < s.values[i, 0] < 47.1
    # on the 5-minute grid (…:56, …:01) the repeated 03:00 rows snap to 03:01
    with pytest.raises(
        DataError,
        match=r"duplicate timestamp 2014-03-09 03:00 \(on the grid at 2014-03-09 03:01\) "
        "at line 558 and line 559",
    ):
        read_series_csv(path, duplicates="error")
    with pytest.raises(DataError, match=r"duplicate timestamp 2014-03-09 03:00 at line 558 and line 559"):
        read_series_csv(path, duplicates="error", freq=None)


# ----------------------------------------------------------------------------- windows


def test_sliding_windows_even_is_a_read_only_view():
    values = np.arange(20.0).reshape(10, 2)
    windows, starts = sliding_windows(values, 4, 3)
    assert windows.shape == (3, 4, 2) and starts.tolist() == [0, 3, 6] and starts.dtype == np.int64
    for w, s in zip(windows, starts):
        np.testing.assert_array_equal(w, values[s : s + 4])
    assert np.shares_memory(windows, values) and not windows.flags.writeable


def test_sliding_windows_adds_final_window():
    values = np.arange(22.0).reshape(11, 2)
    windows, starts = sliding_windows(values, 4, 3)
    assert starts.tolist() == [0, 3, 6, 7] and windows.shape == (4, 4, 2)
    np.testing.assert_array_equal(windows[-1], values[7:])
    assert not windows.flags.writeable
    covered = np.zeros(11, bool)
    for s in starts:
        covered[s : s + 4] = True
    assert covered.all()
    w1, s1 = sliding_windows(np.arange(5.0), 2, 2)  # 1-D input -> (m, window)
    assert w1.shape == (3, 2) and s1.tolist() == [0, 2, 3]
    w, s = sliding_windows(np.arange(5.0)[:, None], 5)
    assert w.shape == (1, 5, 1) and s.tolist() == [0]


@pytest.mark.parametrize(
    "n, window, stride, error, match",
    [
        (10, 1, 1, ConfigError, "window must be at least 2"),
        (10, 4, 0, ConfigError, "stride must be at least 1"),
        (10, 4, 5, ConfigError, "points between windows would be skipped"),
        (10, 2.5, 1, ConfigError, "window must be an integer"),
        (37, 50, 1, DataError, "the series has 37 points but the window is 50: use a window of at most 37 or more"),
    ],
)
def test_check_window_errors(n, window, stride, error, match):
    with pytest.raises(error, match=match):
        check_window(n, window, stride)


def test_check_window_what():
    check_window(50, 50, 50)
    with pytest.raises(DataError, match="the test split has 3 points"):
        check_window(3, 4, 1, what="test split")
    with pytest.raises(DataError, match="has 3 points"):
        sliding_windows(np.zeros((3, 1)), 4)


def test_window_scores_to_points_hand_computed():
    starts = np.array([0, 1, 2])
    scores = np.array([3.0, 6.0, 9.0])
    np.testing.assert_allclose(window_scores_to_points(scores, starts, 3, 5), [3, 4.5, 6, 7.5, 9])
    np.testing.assert_array_equal(window_scores_to_points(scores, starts, 3, 5, reduce="max"), [3, 6, 9, 9, 9])
    per_step = np.arange(1.0, 10.0).reshape(3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    np.testing.assert_allclose(window_scores_to_points(per_step, starts, 3, 5), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(window_scores_to_points(per_step, starts, 3, 5, reduce="max"), [1, 4, 7, 8, 9])
    # uncovered steps are NaN
    out = window_scores_to_points(np.array([1.0, 2.0]), np.array([0, 5]), 2, 7)
    np.testing.assert_array_equal(np.isnan(out), [False, False, True, True, True, False, False])


@pytest.mark.parametrize("reduce", ["mean", "max"])
@pytest.mark.parametrize("per_step", [False, True])
def test_window_scores_to_points_matches_loop(reduce, per_step):
    rng = np.random.default_rng(0)
    n, window = 23, 5
    _, starts = sliding_windows(np.zeros(n), window, 3)
    scores = rng.normal(size=(len(starts), window) if per_step else len(starts))
    got = window_scores_to_points(scores, starts, window, n, reduce=reduce)
    expected = np.empty(n)
    for t in range(n):
        parts = [scores[j, t - s] if per_step else scores[j] for j, s in enumerate(starts) if s <= t < s + window]
        expected[t] = np.mean(parts) if reduce == "mean" else np.max(parts)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "scores, starts, error, match",
    [
        (np.ones(3), np.array([0, 1]), DataError, "window_scores must be"),
        (np.ones((2, 2)), np.array([0, 1]), DataError, "window_scores must be"),
        (np.ones(2), np.array([0, 3]), DataError, "window starts must lie in"),
        (np.array([1.0, np.nan]), np.array([0, 1]), DataError, "finite"),
        (np.ones(2), np.array([0.0, 1.0]), DataError, "integer"),
    ],
)
def test_window_scores_to_points_errors(scores, starts, error, match):
    with pytest.raises(error, match=match):
        window_scores_to_points(scores, starts, 3, 5)


def test_window_scores_to_points_bad_reduce():
    with pytest.raises(ConfigError, match="reduce='median'"):
        window_scores_to_points(np.ones(1), np.array([0]), 3, 3, reduce="median")
