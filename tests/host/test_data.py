"""CSV reading, bundled datasets, label order, splits and scaling (edgenn.data)."""

from __future__ import annotations

import numpy as np
import pytest

from edgenn.data import (
    fit_scaling,
    list_datasets,
    load_dataset,
    load_for_model,
    sorted_labels,
    stratified_split,
)
from edgenn.errors import UserError


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = "a,b,kind\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n"


def error_of(path: str, label: str | None = "kind", **kw) -> str:
    with pytest.raises(UserError) as info:
        load_dataset(path, label, **kw)
    return str(info.value)


def test_reads_a_good_csv(tmp_path):
    ds = load_dataset(write(tmp_path, GOOD), "kind")
    assert ds.X.shape == (4, 2) and ds.X.dtype == np.float64
    assert ds.feature_names == ["a", "b"]
    assert ds.labels == ["x", "y"]
    assert ds.y.tolist() == [0, 1, 0, 1]
    assert ds.task == "classify"


@pytest.mark.parametrize(
    "text, row, column, what",
    [
        ("a,b,kind\n1,2,x\n3,oops,y\n", 3, "b", "'oops' is not a number"),
        ("a,b,kind\n1,2,x\n3,,y\n", 3, "b", "missing value"),
        ("a,b,kind\n1,2,x\n3,4,y\nNA,4,y\n", 4, "a", "missing value"),
        ("a,b,kind\n1,2,x\n3,4,y\n5,inf,x\n", 4, "b", "not a finite number"),
        ("a,b,kind\n1,2,x\n3,4,\n", 3, "kind", "missing label"),
    ],
)
def test_bad_cells_name_file_row_and_column(tmp_path, text, row, column, what):
    path = write(tmp_path, text)
    message = error_of(path)
    assert path in message
    assert f"row {row}" in message
    assert repr(column) in message
    assert what in message


def test_ragged_row_names_file_and_row(tmp_path):
    path = write(tmp_path, "a,b,kind\n1,2,x\n\n3,4\n5,6,y\n")
    message = error_of(path)
    assert path in message and "row 4" in message and "2 cells" in message and "3 columns" in message


@pytest.mark.parametrize("text", ["", "\n\n", "  \n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    assert "empty file" in error_of(path)


def test_header_without_rows(tmp_path):
    assert "no data rows" in error_of(write(tmp_path, "a,b,kind\n"))


def test_unknown_label_column_lists_the_columns(tmp_path):
    path = write(tmp_path, GOOD)
    message = error_of(path, label="species")
    assert "'species'" in message and "a, b, kind" in message and path in message


def test_csv_without_label_asks_for_one(tmp_path):
    message = error_of(write(tmp_path, GOOD), label=None)
    assert "--label" in message and "a, b, kind" in message


def test_single_class_is_refused(tmp_path):
    path = write(tmp_path, "a,b,kind\n1,2,x\n3,4,x\n")
    message = error_of(path)
    assert "only one class" in message and "'kind'" in message and path in message


def test_duplicate_and_empty_header_names(tmp_path):
    assert "duplicate column" in error_of(write(tmp_path, "a,a,kind\n1,2,x\n3,4,y\n"))
    assert "column 2 of the header has no name" in error_of(write(tmp_path, "a,,kind\n1,2,x\n3,4,y\n"))


def test_missing_file_and_unknown_dataset_name_list_bundled():
    message = error_of("no_such_thing", label=None)
    assert "no_such_thing" in message and "iris" in message and "digits" in message


def test_label_only_column(tmp_path):
    assert "no features" in error_of(write(tmp_path, "kind\nx\ny\n"))


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,kind\n1,caf\xe9\n".encode("latin-1"))
    assert "UTF-8" in error_of(str(path))


def test_bom_blank_lines_and_spaces_are_fine(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa, b ,kind\n1, 2 ,x\n\n3,4, y\n".encode())
    ds = load_dataset(str(path), "kind")
    assert ds.feature_names == ["a", "b"] and ds.labels == ["x", "y"]


def test_label_order_is_sorted_numerically_when_numeric():
    assert sorted_labels(["b", "a", "c", "a"]) == ["a", "b", "c"]
    assert sorted_labels(["10", "9", "1"]) == ["1", "9", "10"]
    assert sorted_labels(["1", "1.0", "2"]) in (["1", "2"], ["1.0", "2"])


def test_numeric_labels_with_two_spellings_are_one_class(tmp_path):
    ds = load_dataset(write(tmp_path, "a,k\n1,1\n2,1.0\n3,2\n4,2\n"), "k", task="classify")
    assert len(ds.labels) == 2 and ds.y.tolist() == [0, 0, 1, 1]


def test_task_inference(tmp_path):
    few_ints = "a,k\n" + "".join(f"{i},{i % 3}\n" for i in range(30))
    many_floats = "a,k\n" + "".join(f"{i},{i * 0.37}\n" for i in range(30))
    assert load_dataset(write(tmp_path, few_ints, "c.csv"), "k").task == "classify"
    reg = load_dataset(write(tmp_path, many_floats, "r.csv"), "k")
    assert reg.task == "regress" and reg.y.dtype == np.float64 and reg.labels == ["k"]
    assert load_dataset(write(tmp_path, few_ints, "c.csv"), "k", task="regress").task == "regress"


def test_regress_with_text_target_names_the_cell(tmp_path):
    message = error_of(write(tmp_path, GOOD), task="regress")
    assert "row 2" in message and "'kind'" in message and "not a number" in message


def test_every_bundled_dataset_loads_by_name_with_its_metadata():
    listed = list_datasets()
    assert {d["name"] for d in listed} >= {"iris", "wine", "breast_cancer", "digits", "diabetes"}
    for d in listed:
        ds = load_dataset(d["name"])
        assert ds.n_rows == d["rows"] and ds.n_features == d["features"]
        assert ds.task == d["task"] and ds.label_column == d["label"]
        if ds.task == "classify":
            assert set(np.unique(ds.y)) == set(range(len(ds.labels)))


def test_digits_classes_are_in_numeric_order():
    assert load_dataset("digits").labels == [str(i) for i in range(10)]


# --- splits -------------------------------------------------------------------------------------


def test_split_is_a_stratified_partition():
    ds = load_dataset("wine")
    split = stratified_split(ds, test_fraction=0.2, val_fraction=0.15, seed=3)
    parts = [split.train, split.val, split.test]
    joined = np.concatenate(parts)
    assert len(joined) == ds.n_rows and len(np.unique(joined)) == ds.n_rows  # disjoint, complete
    for k in range(len(ds.labels)):
        n_class = int(np.sum(ds.y == k))
        assert abs(np.sum(ds.y[split.test] == k) - 0.2 * n_class) <= 1
        assert abs(np.sum(ds.y[split.val] == k) - 0.15 * n_class) <= 1


def test_split_is_seeded():
    ds = load_dataset("iris")
    a, b = stratified_split(ds, seed=1), stratified_split(ds, seed=1)
    c = stratified_split(ds, seed=2)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train)
    assert not np.array_equal(a.test, c.test)


def test_tiny_classes_keep_a_training_row(tmp_path):
    text = "a,k\n1,x\n2,y\n3,y\n" + "".join(f"{i},z\n" for i in range(20))
    ds = load_dataset(write(tmp_path, text), "k")
    split = stratified_split(ds, test_fraction=0.5, val_fraction=0.4, seed=0)
    assert set(ds.y[split.train]) == {0, 1, 2}


def test_regression_split_covers_the_target_range():
    ds = load_dataset("diabetes")
    split = stratified_split(ds, seed=0)
    low, high = np.quantile(ds.y, [0.1, 0.9])
    for rows in (split.test, split.val):
        assert np.any(ds.y[rows] < low) and np.any(ds.y[rows] > high)


def test_bad_fractions():
    with pytest.raises(UserError):
        stratified_split(load_dataset("iris"), test_fraction=0.6, val_fraction=0.5)


# --- scaling -------------------------------------------------------------------------------------


def test_scaling_guards_constant_features():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    mean, std = fit_scaling(X)
    assert np.allclose(mean, [3.0, 5.0]) and std[1] == 1.0 and std[0] > 0
    assert np.all(np.isfinite((X - mean) / std))


def test_scaling_is_fitted_on_training_rows_only():
    from edgenn.nn import TrainConfig, train

    ds = load_dataset("wine")
    model = train(ds, TrainConfig(epochs=1, seed=5, folds=0, test_fraction=0.3))
    split = stratified_split(ds, 0.3, 0.0, seed=5)
    assert np.allclose(model.input_mean, ds.X[split.train].mean(axis=0))
    assert np.allclose(model.input_std, ds.X[split.train].std(axis=0))
    assert not np.allclose(model.input_mean, ds.X.mean(axis=0))


# --- reading data for an existing model -------------------------------------------------------


def test_load_for_model_reorders_columns_and_keeps_the_model_class_order(tmp_path):
    path = write(tmp_path, "kind,b,a\ny,2,1\ny,4,3\n")
    ds, _ = load_for_model(path, ["a", "b"], "kind", "classify", ["x", "y"])
    assert ds.X.tolist() == [[1, 2], [3, 4]]
    assert ds.y.tolist() == [1, 1]  # one class present, still id 1 as in the model


def test_load_for_model_says_which_columns_are_wrong(tmp_path):
    path = write(tmp_path, "a,c,kind\n1,2,x\n")
    with pytest.raises(UserError) as info:
        load_for_model(path, ["a", "b"], "kind", "classify", ["x", "y"])
    message = str(info.value)
    assert "missing feature column(s) b" in message and "unexpected column(s) c" in message


def test_load_for_model_unknown_class_names_the_row(tmp_path):
    path = write(tmp_path, "a,b,kind\n1,2,x\n1,2,w\n")
    with pytest.raises(UserError) as info:
        load_for_model(path, ["a", "b"], "kind", "classify", ["x", "y"])
    assert "row 3" in str(info.value) and "'w'" in str(info.value)


def test_column_errors_name_a_bundled_set_by_name_and_shorten_long_column_lists(tmp_path):
    with pytest.raises(UserError, match=r"^iris: no column named 'nope'"):
        load_dataset("iris", label="nope")
    window = [f"{a}{i}" for a in "xyz" for i in range(32)]
    with pytest.raises(UserError) as err:
        load_for_model("iris", window, "species", "classify", ["setosa", "versicolor", "virginica"])
    message = str(err.value)
    assert message.startswith("iris: columns do not match the model: missing feature column(s) x0, x1")
    assert "..., z31 (96 in all)" in message and "x20" not in message


def test_a_column_named_label_is_the_label_without_the_option(tmp_path) -> None:
    """`edgenn record` writes a `label` column: such a file trains without --label."""
    path = tmp_path / "rec.csv"
    path.write_text("x0,x1,label\n1,2,up\n3,4,down\n5,6,up\n")
    ds = load_dataset(str(path))
    assert ds.label_column == "label" and ds.feature_names == ["x0", "x1"] and ds.labels == ["down", "up"]
    other = tmp_path / "other.csv"
    other.write_text("x0,x1,kind\n1,2,up\n3,4,down\n")
    with pytest.raises(UserError, match="which column is the label"):
        load_dataset(str(other))
