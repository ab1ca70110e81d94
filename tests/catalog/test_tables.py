"""Managed Lance tables: create from every input kind, write, delete, time travel, replays."""

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from lakeray.client.base import to_arrow
from lakeray.errors import AlreadyExists, InvalidArgument, NotFound

T = "main.default.people"


def _people():
    return pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["ada", "bob", "cy"],
                     "score": [1.5, 2.5, 3.5]})


def test_create_from_schema_then_append_and_read(registry, admin):
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    info = registry.call_as(admin, "create_table", full_name=T, schema=schema, comment="people")
    assert info["table_type"] == "MANAGED" and info["comment"] == "people"
    assert [c["type_name"] for c in info["columns"]] == ["LONG", "STRING"]
    out = registry.call_as(admin, "append_table", full_name=T, data=pa.table({"id": [1], "name": ["a"]}))
    assert out["num_rows"] == 1 and out["version"] == 2
    assert registry.call_as(admin, "read_table", full_name=T).to_pylist() == [{"id": 1, "name": "a"}]


@pytest.mark.parametrize("kind", ["arrow", "pandas", "parquet", "csv", "rows"])
def test_create_from_each_input_kind(registry, admin, tmp_path, kind):
    table = _people()
    source = {"arrow": table, "pandas": table.to_pandas(), "rows": table.to_pylist()}.get(kind)
    if kind == "parquet":
        source = tmp_path / "p.parquet"
        pq.write_table(table, source)
    if kind == "csv":
        source = tmp_path / "p.csv"
        pcsv.write_csv(table, source)
    registry.call_as(admin, "create_table", full_name=T, data=to_arrow(source))
    back = registry.call_as(admin, "read_table", full_name=T)
    assert back.num_rows == 3 and back.column("name").to_pylist() == ["ada", "bob", "cy"]


def test_overwrite_delete_versions_and_time_travel(registry, admin):
    r = registry
    r.call_as(admin, "create_table", full_name=T, data=_people())
    r.call_as(admin, "append_table", full_name=T, data=pa.table({"id": [4], "name": ["dee"], "score": [4.5]}))
    deleted = r.call_as(admin, "delete_rows", full_name=T, predicate=[["score", "<", 2.0]])
    assert deleted["num_deleted"] == 1
    r.call_as(admin, "overwrite_table", full_name=T, data=pa.table({"id": [9], "name": ["z"], "score": [0.0]}))
    versions = r.call_as(admin, "table_versions", full_name=T)
    assert [v["num_rows"] for v in versions] == [3, 4, 3, 1]
    assert r.call_as(admin, "read_table", full_name=T, version=1).num_rows == 3
    assert r.call_as(admin, "read_table", full_name=T, version=2).num_rows == 4
    assert r.call_as(admin, "read_table", full_name=T).to_pylist() == [{"id": 9, "name": "z", "score": 0.0}]
    with pytest.raises(NotFound):
        r.call_as(admin, "read_table", full_name=T, version=99)
    described = r.call_as(admin, "describe_table", full_name=T)
    assert described["num_rows"] == 1 and described["version"] == 4


def test_structured_predicates(registry, admin):
    r = registry
    r.call_as(admin, "create_table", full_name=T, data=_people())
    got = r.call_as(admin, "read_table", full_name=T, predicate=[["name", "in", ["ada", "cy"]], ["id", ">", 1]])
    assert got.column("name").to_pylist() == ["cy"]
    quoted = r.call_as(admin, "read_table", full_name=T, predicate=[["name", "=", "x' OR '1'='1"]])
    assert quoted.num_rows == 0
    for bad in ([["nope", "=", 1]], [["id", "LIKE", 1]], [["id", "=", {"a": 1}]], "id = 1", [],
                [["id", "=", float("nan")]], [["id; drop", "=", 1]]):
        with pytest.raises(InvalidArgument):
            r.call_as(admin, "read_table", full_name=T, predicate=bad)
    assert r.call_as(admin, "read_table", full_name=T).num_rows == 3


def test_writes_are_checked_against_the_schema(registry, admin):
    r = registry
    r.call_as(admin, "create_table", full_name=T, data=_people())
    for bad in (pa.table({"id": [1], "extra": [1]}), pa.table({"id": ["x"], "name": ["a"], "score": [1.0]})):
        with pytest.raises(InvalidArgument):
            r.call_as(admin, "append_table", full_name=T, data=bad)
    # a column may be left out when it is nullable; ints widen safely
    r.call_as(admin, "append_table", full_name=T, data=pa.table({"id": pa.array([5], pa.int32())}))
    assert r.call_as(admin, "read_table", full_name=T).num_rows == 4
    assert len(r.call_as(admin, "table_versions", full_name=T)) == 2


def test_create_rejects_duplicates_and_bad_columns(registry, admin):
    r = registry
    r.call_as(admin, "create_table", full_name=T, data=_people())
    with pytest.raises(AlreadyExists):
        r.call_as(admin, "create_table", full_name=T, data=_people())
    for bad in (pa.schema([("bad name", pa.int64())]), pa.schema([("a", pa.int64()), ("A", pa.int64())]),
                pa.schema([])):
        with pytest.raises(InvalidArgument):
            r.call_as(admin, "create_table", full_name="main.default.other", schema=bad)
    with pytest.raises(NotFound):
        r.call_as(admin, "get_table", full_name="main.default.other")


def test_retried_write_with_the_same_request_id_lands_once(registry, admin):
    r = registry
    r.call_as(admin, "create_table", full_name=T, data=_people())
    first = r.call_as(admin, "append_table", request_id="req-1", full_name=T,
                      data=pa.table({"id": [7], "name": ["q"], "score": [1.0]}))
    again = r.call_as(admin, "append_table", request_id="req-1", full_name=T,
                      data=pa.table({"id": [7], "name": ["q"], "score": [1.0]}))
    assert again["version"] == first["version"] and again.get("replayed")
    assert r.call_as(admin, "read_table", full_name=T).num_rows == 4


def test_uc_columns_create(registry, admin):
    cols = [{"name": "id", "type_name": "LONG", "position": 0},
            {"name": "tags", "type_name": "ARRAY", "position": 1,
             "type_json": '{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},'
                          '"nullable":true,"metadata":{}}'}]
    info = registry.call_as(admin, "create_table_from_columns", catalog_name="main", schema_name="default",
                            name="uc", columns=cols)
    assert [c["type_text"] for c in info["columns"]] == ["long", "array<string>"]
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "create_table_from_columns", catalog_name="main", schema_name="default",
                         name="ext", columns=cols, table_type="EXTERNAL", storage_location="s3://b/x")


def test_paged_reads_are_pinned_to_a_version(registry, admin):
    r = registry
    r.call_as(admin, "create_table", full_name=T, data=pa.table({"id": list(range(25))}))
    page = r.call_as(admin, "read_table_page", full_name=T, max_rows=10)
    r.call_as(admin, "append_table", full_name=T, data=pa.table({"id": [100]}))
    rows = page["table"].column("id").to_pylist()
    while page.get("next_page_token"):
        page = r.call_as(admin, "read_table_page", full_name=T, page_token=page["next_page_token"], max_rows=10)
        rows += page["table"].column("id").to_pylist()
    assert rows == list(range(25))
    with pytest.raises(InvalidArgument):
        r.call_as(admin, "read_table_page", full_name=T, page_token="garbage!")


def test_dropping_a_table_removes_its_data(registry, admin, settings):
    r = registry
    info = r.call_as(admin, "create_table", full_name=T, data=_people())
    from urllib.parse import urlparse

    path = urlparse(info["storage_location"]).path
    import os

    assert os.path.isdir(path)
    r.call_as(admin, "delete_table", full_name=T)
    assert not os.path.exists(path)


def test_pandas_round_trip(registry, admin):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    registry.call_as(admin, "create_table", full_name=T, data=to_arrow(df))
    back = registry.call_as(admin, "read_table", full_name=T).to_pandas()
    pd.testing.assert_frame_equal(back, df)


def test_bad_lineage_arguments_are_refused_before_the_write(registry, admin):
    r = registry
    r.call_as(admin, "create_table", full_name=T, data=_people())
    row = pa.table({"id": [5], "name": ["e"], "score": [1.0]})
    for bad in ({"sources": "table:x"}, {"sources": ["table:not a name"]}, {"sources": ["weird:x"]},
                {"run_id": ""}, {"job_id": "x" * 500}, {"run_id": "a\x00"}):
        with pytest.raises(InvalidArgument):
            r.call_as(admin, "append_table", full_name=T, data=row, **bad)
    assert r.call_as(admin, "read_table", full_name=T).num_rows == 3
    out = r.call_as(admin, "append_table", full_name=T, data=row, sources=["table:main.default.src"], run_id="r1")
    assert out["num_rows"] == 1
    edges = r.call_as(admin, "get_lineage", node_type="table", name=T)["edges"]
    assert edges[0]["source"] == {"type": "table", "name": "main.default.src"} and edges[0]["run_id"] == "r1"


def test_lone_surrogates_are_400_not_500(registry, admin):
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "create_catalog", name="c1", comment="bad \ud800 half")
    with pytest.raises(InvalidArgument):
        registry.call_as(admin, "update_schema", full_name="main.default", properties={"k": "\udfff"})
