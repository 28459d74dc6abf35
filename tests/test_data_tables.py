"""Numeric CSV tables: features, labels, column selection and every bad-input message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aekit.data.tables import read_table_csv
from aekit.errors import ConfigError, DataError, DataFileError


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_with_label(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,0\n3.5,-4,1\n5,6e1,0\n")
    X, names, y = read_table_csv(path, label_column="label")
    assert X.dtype == np.float64 and X.shape == (3, 2)
    np.testing.assert_array_equal(X, [[1, 2], [3.5, -4], [5, 60]])
    assert names == ["a", "b"]
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 0]


def test_read_without_label(tmp_path):
    X, names, y = read_table_csv(write(tmp_path, "a,b\n1,2\n3,4\n"))
    assert names == ["a", "b"] and y is None and X.shape == (2, 2)


@pytest.mark.parametrize(
    "labels, expected",
    [
        (["0", "1"], [0, 1]),
        (["normal", "Anomaly"], [0, 1]),
        (["True", "false"], [1, 0]),
        (["1.0", "0.0"], [1, 0]),
    ],
)
def test_label_forms(tmp_path, labels, expected):
    path = write(tmp_path, "x,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))
    assert read_table_csv(path, label_column="y")[2].tolist() == expected


def test_bad_label(tmp_path):
    path = write(tmp_path, "x,y\n1,0\n2,1\n3,2\n")
    with pytest.raises(DataFileError, match=r"line 4, column 'y': '2' is not a label: labels must be 0/1"):
        read_table_csv(path, label_column="y")
    path = write(tmp_path, "x,y\n1,0\n2,\n", "e.csv")
    with pytest.raises(DataFileError, match=r"line 3, column 'y': '' is not a label"):
        read_table_csv(path, label_column="y")


def test_headerless_numeric_file(tmp_path):
    X, names, y = read_table_csv(write(tmp_path, "1,2,0\n3,4,1\n"), label_column="x2")
    assert names == ["x0", "x1"] and y.tolist() == [0, 1]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_columns_and_drop_columns(tmp_path):
    path = write(tmp_path, "id,name,a,b,c,label\n1,x,1,2,3,0\n2,y,4,5,6,1\n")
    X, names, _ = read_table_csv(path, label_column="label", drop_columns=["id", "name"])
    assert names == ["a", "b", "c"]
    X, names, _ = read_table_csv(path, columns=["c", "a"])
    assert names == ["c", "a"]
    np.testing.assert_array_equal(X, [[3, 1], [6, 4]])
    X, names, _ = read_table_csv(path, columns=["a", "b", "c"], drop_columns=["b"])
    assert names == ["a", "c"]
    available = r"available columns: \['id', 'name', 'a', 'b', 'c', 'label'\]"
    with pytest.raises(ConfigError, match=r"no column 'd'; " + available):
        read_table_csv(path, columns=["d"])
    with pytest.raises(ConfigError, match="no column 'nope'"):
        read_table_csv(path, drop_columns=["nope"])
    with pytest.raises(ConfigError, match="no column 'target'"):
        read_table_csv(path, label_column="target")
    with pytest.raises(ConfigError, match="cannot also be a feature"):
        read_table_csv(path, label_column="label", columns=["a", "label"])
    with pytest.raises(ConfigError, match="no feature columns left"):
        read_table_csv(path, columns=["a"], drop_columns=["a"])


def test_non_numeric_cell_suggests_drop_columns(tmp_path):
    path = write(tmp_path, "id,a\nu1,1\nu2,2\n")
    message = r"t\.csv: line 2, column 'id': 'u1' is not a number; .*drop_columns=\['id'\]"
    with pytest.raises(DataFileError, match=message):
        read_table_csv(path)
    X, names, _ = read_table_csv(path, drop_columns=["id"])
    assert names == ["a"] and X[:, 0].tolist() == [1, 2]
    path = write(tmp_path, "a,b\n1,2\n3,inf\n", "i.csv")
    with pytest.raises(DataFileError, match=r"line 3, column 'b': 'inf' is not a finite number"):
        read_table_csv(path)


def test_missing_values(tmp_path):
    path = write(tmp_path, "a,b,c\n1,,3\n4,5,6\n7,NA,nan\n10,11,12\n")
    with pytest.raises(
        DataError,
        match=r"2 of 4 rows have missing values \(first at line 2; per column: 'b' \(2\), "
        r"'c' \(1\)\).*impute",
    ):
        read_table_csv(path)
    X, names, _ = read_table_csv(path, drop_columns=["b", "c"])
    assert X[:, 0].tolist() == [1, 4, 7, 10]


def test_all_empty_column(tmp_path):
    path = write(tmp_path, "a,b\n1,\n2,nan\n")
    with pytest.raises(DataError, match=r"column 'b' has no values .*drop_columns=\['b'\]"):
        read_table_csv(path)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "is empty"),
        ("a,b\n", "header row but no data rows"),
        ("a,b\n1,2\n3\n", "line 3 has 1 cells but the header has 2"),
        ("a,b\n1,2\n\n3,4,5\n", "line 4 has 3 cells"),
    ],
)
def test_bad_files(tmp_path, text, match):
    with pytest.raises(DataFileError, match=match):
        read_table_csv(write(tmp_path, text))


def test_not_a_file(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        read_table_csv(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(DataFileError, match="not a UTF-8 text CSV"):
        read_table_csv(tmp_path / "bin.csv")


def test_quotes_blank_lines_and_bom(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes('\ufeff"a","b c"\n"1", 2\n\n3,"4"\n'.encode())
    X, names, _ = read_table_csv(path)
    assert names == ["a", "b c"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
