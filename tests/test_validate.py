from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import columns as col
from features.errors import ConfigError, DataError, MissingColumnError, TooManyBadRowsError
from features.ingest import parse_column_mapping
from features.validate import ValidatedTable, load_interactions, load_items, load_members

HEADER = ["member_id", "item_id", "event", "timestamp", "quantity", "price"]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_good_rows_are_typed_per_contract(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "ok.csv",
        [
            ["m1", "i1", "view", "2024-01-02T03:04:05Z", "", ""],
            ["m1", "i2", "Purchase", "1704164645", "2", "9.5"],
            ["m2", "i1", "", "2024-01-02", "1", "0"],
        ],
    )
    frame = load_interactions(path).frame
    assert frame.schema[col.TIMESTAMP] == pl.Datetime("us")
    # In time order; the two rows at 03:04:05 keep the file's order.
    assert frame[col.MEMBER_ID].to_list() == ["m2", "m1", "m1"]
    assert frame[col.EVENT].to_list() == ["purchase", "view", "purchase"]
    assert frame[col.QUANTITY].to_list() == [1.0, 1.0, 2.0]
    assert frame[col.TIMESTAMP][1] == frame[col.TIMESTAMP][2] == datetime(2024, 1, 2, 3, 4, 5)
    assert frame[col.PRICE].to_list() == [0.0, None, 9.5]


def test_accepted_rows_come_in_time_order_without_duplicates(tmp_path: Path) -> None:
    """One gather drops the repeats and orders by time, ties in the file's order."""
    rows = [
        ["m1", "i3", "view", "2024-01-03", "1", "1"],
        ["m1", "i1", "view", "2024-01-01", "1", "1"],
        ["m2", "i2", "view", "2024-01-02", "1", "1"],
        ["m1", "i3", "view", "2024-01-03", "1", "1"],  # an exact repeat of the first row
        ["m3", "i4", "view", "2024-01-02", "1", "1"],
    ]
    table = load_interactions(write_csv(tmp_path / "unordered.csv", rows))
    assert table.report.duplicates == 1
    assert table.frame[col.ITEM_ID].to_list() == ["i1", "i2", "i4", "i3"]


def test_each_bad_value_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "mixed.csv",
        [
            ["m1", "i1", "view", "2024-01-01", "1", "1"],
            ["", "i1", "view", "2024-01-01", "1", "1"],
            ["m1", " ", "view", "2024-01-01", "1", "1"],
            ["m1", "i1", "view", "yesterday", "1", "1"],
            ["m1", "i1", "like", "2024-01-01", "1", "1"],
            ["m1", "i1", "cart", "2024-01-01", "-2", "1"],
            ["m1", "i1", "cart", "2024-01-01", "two", "1"],
            ["m1", "i1", "cart", "2024-01-01", "1", "-1"],
        ],
    )
    quarantine = tmp_path / "q.csv"
    report = load_interactions(path, max_bad_share=1.0, quarantine_path=quarantine).report
    assert report.accepted == 1
    assert report.reasons == {
        "missing member_id": 1,
        "missing item_id": 1,
        "unparseable timestamp": 1,
        "unknown event (expected one of view, click, cart, purchase)": 1,
        "quantity is not positive": 1,
        "quantity is not a number": 1,
        "price is negative": 1,
    }
    rejected = pl.read_csv(quarantine, infer_schema=False)
    assert rejected[col.ROW_NUMBER].to_list() == [str(n) for n in range(2, 9)]
    assert rejected["timestamp"][2] == "yesterday"  # original values, not parsed ones


def test_exact_repeat_is_a_duplicate_but_a_changed_row_is_not(tmp_path: Path) -> None:
    row = ["m1", "i1", "view", "2024-01-01", "1", "1"]
    path = write_csv(tmp_path / "d.csv", [row, row, [*row[:4], "2", "1"], row])
    report = load_interactions(path).report
    assert (report.accepted, report.duplicates, report.quarantined) == (2, 2, 0)


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "nots.csv", [["m1", "i1"]], header=["member_id", "item_id"])
    with pytest.raises(MissingColumnError, match=r"nots\.csv.*'timestamp'.*--columns timestamp="):
        load_interactions(path)


def test_missing_optional_event_column_defaults_to_purchase(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "p.csv", [["m1", "i1", "2024-01-01"]], ["member_id", "item_id", "timestamp"]
    )
    assert load_interactions(path).frame[col.EVENT].to_list() == ["purchase"]


def test_bad_share_cap_names_file_column_and_example_row(tmp_path: Path) -> None:
    rows = [["m1", "i1", "view", "2024-01-01", "1", "1"]] * 6 + [
        ["m2", "i2", "view", "soon", "1", "1"]
    ] * 4
    path = write_csv(tmp_path / "bad.csv", rows)
    quarantine = tmp_path / "q.csv"
    with pytest.raises(TooManyBadRowsError) as caught:
        load_interactions(path, max_bad_share=0.2, quarantine_path=quarantine)
    message = str(caught.value)
    assert "bad.csv" in message
    assert "'timestamp'" in message
    assert "row 7" in message and "timestamp='soon'" in message
    assert "40.0%" in message and "20.0%" in message
    assert caught.value.report["quarantined"] == 4
    assert pl.read_csv(quarantine).height == 4  # nothing is lost when the load is refused


def test_column_mapping_renames_and_quarantine_keeps_source_names(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "m.csv",
        [["c1", "s1", "2024-01-01", "x"], ["", "s2", "2024-01-01", "y"]],
        header=["Customer", "Sku", "When", "Note"],
    )
    mapping = parse_column_mapping(
        "member_id=Customer, item_id=Sku,timestamp=When", ("member_id", "item_id", "timestamp")
    )
    quarantine = tmp_path / "q.csv"
    loaded = load_interactions(path, mapping, max_bad_share=1.0, quarantine_path=quarantine)
    assert loaded.frame[col.MEMBER_ID].to_list() == ["c1"]
    assert pl.read_csv(quarantine).columns == ["_row", "_reason", "Customer", "Sku", "When", "Note"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("member_id", "TARGET=SOURCE"), ("memberid=Customer", "not a column of the data contract")],
)
def test_bad_column_mapping_is_explained(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_column_mapping(spec, ("member_id",))


def test_mapping_to_an_absent_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["m1", "i1", "view", "2024-01-01", "1", "1"]])
    with pytest.raises(MissingColumnError, match=r"'CustomerID'.*columns found: member_id"):
        load_interactions(path, {"member_id": "CustomerID"})


def test_parquet_with_native_types_loads(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.DataFrame(
        {
            "member_id": [17850.0, None],
            "item_id": ["a", "b"],
            "timestamp": [datetime(2024, 1, 1), datetime(2024, 1, 2)],
            "quantity": [3, 1],
        }
    ).write_parquet(path)
    loaded = load_interactions(path, max_bad_share=1.0, quarantine_path=tmp_path / "q.csv")
    assert loaded.frame[col.MEMBER_ID].to_list() == ["17850"]
    assert loaded.report.reasons == {"missing member_id": 1}


def test_unreadable_or_missing_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_interactions(tmp_path / "none.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unknown file type"):
        load_interactions(tmp_path / "x.json")


def test_items_keep_first_row_per_id_and_check_prices(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "items.csv",
        [
            ["i1", "Lamp", "9.5", "yes"],
            ["i1", "Lamp v2", "8", "no"],
            ["i2", "Mug", "cheap", "1"],
            ["", "x", "1", "1"],
        ],
        header=["item_id", "title", "price", "available"],
    )
    loaded = load_items(path, max_bad_share=1.0, quarantine_path=tmp_path / "q.csv")
    assert loaded.frame.to_dicts() == [
        {"item_id": "i1", "price": 9.5, "available": True, "title": "Lamp"}
    ]
    assert (loaded.report.duplicates, loaded.report.quarantined) == (1, 2)


def test_members_parse_joined_at(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "members.csv",
        [["m1", "2024-03-01", "gold"]],
        header=["member_id", "joined_at", "tier"],
    )
    frame = load_members(path).frame
    assert frame[col.JOINED_AT][0] == datetime(2024, 3, 1)


@pytest.mark.parametrize(
    ("loader", "key", "field"),
    [(load_items, col.ITEM_ID, col.RELEASED_AT), (load_members, col.MEMBER_ID, col.BIRTH_DATE)],
)
def test_optional_dates_are_parsed_and_a_bad_one_is_quarantined(
    tmp_path: Path, loader: Callable[..., ValidatedTable], key: str, field: str
) -> None:
    path = write_csv(
        tmp_path / "table.csv",
        [["a", "1990-07-15"], ["b", ""], ["c", "someday"], ["d", "2024-03-01T10:30:00Z"]],
        header=[key, field],
    )
    quarantine = tmp_path / "q.csv"
    loaded = loader(path, max_bad_share=1.0, quarantine_path=quarantine)
    assert loaded.frame.schema[field] == pl.Datetime("us")
    assert loaded.frame[field].to_list() == [
        datetime(1990, 7, 15),
        None,
        datetime(2024, 3, 1, 10, 30),
    ]  # a blank optional date is unknown, not an error
    assert loaded.report.reasons == {f"unparseable {field}": 1}
    rejected = pl.read_csv(quarantine, infer_schema=False)
    assert rejected.row(0, named=True) == {
        col.ROW_NUMBER: "3",
        col.REASON: f"unparseable {field}",
        key: "c",
        field: "someday",
    }
    with pytest.raises(TooManyBadRowsError, match=rf"column '{field}'.*row 3: {key}='c'"):
        loader(path, quarantine_path=quarantine)


cell = st.one_of(
    st.sampled_from(
        ["m1", "i1", "", "  ", "x", "-1", "0", "3", "2024-05-01", "view", "cart", "soon"]
    ),
    st.text(max_size=4),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(cell, min_size=6, max_size=6), min_size=1, max_size=40))
def test_counts_always_add_up(tmp_path: Path, rows: list[list[str]]) -> None:
    path = write_csv(tmp_path / "fuzz.csv", rows)
    report = load_interactions(path, max_bad_share=1.0, quarantine_path=tmp_path / "fq.csv").report
    assert report.rows_read == len(rows)
    assert report.rows_read == report.accepted + report.duplicates + report.quarantined
    assert sum(report.reasons.values()) == report.quarantined
