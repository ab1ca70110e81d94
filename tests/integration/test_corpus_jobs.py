"""The corpus jobs against the session platform: the package-docs table, then the chat dataset
built from it, with lineage and overwrite on a second run."""

from __future__ import annotations

import pytest

import lakeray

pytestmark = pytest.mark.ray


def test_build_chat_from_the_real_corpus(platform):
    from lakeray.jobs import build_chat
    from lakeray.jobs.load_corpus import load

    c = platform.client("ray")
    load(c, "main.default.chat_source_docs")
    first = build_chat.build(c, "main.default.chat_source_docs", "main.default.package_chat_test")
    assert first["packages"] > 50 and first["num_rows"] > 100
    table = c.read_table("main.default.package_chat_test")
    assert table.schema == build_chat.SCHEMA
    row = table.slice(0, 1).to_pylist()[0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    edges = c.get_lineage("table", "main.default.package_chat_test")["edges"]
    assert {e["source"]["name"] for e in edges} == {"main.default.chat_source_docs"}

    second = build_chat.build(c, "main.default.chat_source_docs", "main.default.package_chat_test", max_packages=3)
    assert second["packages"] == 3 and second["version"] > first["version"]
    assert c.read_table("main.default.package_chat_test").num_rows == second["num_rows"]

    c.create_table("main.default.empty_docs", data=[{"package": "x", "version": "", "summary": "", "license": "",
                                                      "content_type": "text/plain", "text": "", "num_chars": 0}])
    with pytest.raises(lakeray.InvalidArgument, match="no conversations"):
        build_chat.build(c, "main.default.empty_docs", "main.default.package_chat_test")
    assert c.read_table("main.default.package_chat_test").num_rows == second["num_rows"]  # unchanged
