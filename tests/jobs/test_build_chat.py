"""The chat dataset job: the pure table builder on a hand-made corpus and on the real one
(installed packages' METADATA), and ``build`` against a stand-in client. No Ray."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

import lakeray
from lakeray.jobs import build_chat
from lakeray.jobs.build_chat import SCHEMA, SYSTEM_PROMPT, chat_table, overview
from lakeray.jobs.load_corpus import corpus

CORPUS_SCHEMA = pa.schema([("package", pa.string()), ("version", pa.string()), ("summary", pa.string()),
                           ("license", pa.string()), ("content_type", pa.string()), ("text", pa.string()),
                           ("num_chars", pa.int64())])

MARKDOWN = """<!-- Copyright 2024 The Demo Team. All rights reserved. -->
<p align="center"><img src="https://example.org/logo.png" width="300"/></p>

# demo-pkg

[![PyPI](https://img.shields.io/pypi/v/demo-pkg.svg)](https://pypi.org/project/demo-pkg/)
[![CI](https://github.com/demo/demo-pkg/actions/workflows/ci.yml/badge.svg)](https://github.com/demo/demo-pkg/actions)
![logo](https://example.org/banner.svg)

**demo-pkg** turns [CSV files](https://example.org/csv) into `Arrow` tables without copying data.
It streams rows lazily, so memory use stays flat.

## Installation

```bash
pip install demo-pkg
# a comment that looks like a heading
```

- fast
- small
"""

RST = """.. image:: https://img.shields.io/pypi/v/rstpkg.svg
   :target: https://pypi.org/project/rstpkg

======
rstpkg
======

Install it with::

    pip install rstpkg

Usage
-----

.. code-block:: python

    import rstpkg
    rstpkg.run(fast=True)

``rstpkg`` is a scheduler for small batch jobs on one machine, see `the docs <https://rstpkg.dev>`_.
It keeps its state in a single SQLite file.
"""

LONG_SENTENCE = "Longpkg reads large files in small pieces and hands each piece to a worker thread. "


def _corpus(rows: list[dict]) -> pa.Table:
    full = [{"package": r["package"], "version": r.get("version", ""), "summary": r.get("summary", ""),
             "license": r.get("license", ""), "content_type": r.get("content_type", "text/markdown"),
             "text": r.get("text", ""), "num_chars": len(r.get("text", ""))} for r in rows]
    return pa.Table.from_pylist(full, schema=CORPUS_SCHEMA)


ROWS = [
    {"package": "rstpkg", "version": "0.4.0", "summary": "Run small batch jobs", "content_type": "text/x-rst",
     "license": "BSD 3-Clause License\n\nCopyright (c) 2020, The rstpkg developers\nAll rights reserved.",
     "text": RST},
    {"package": "demo-pkg", "version": "1.2.3", "summary": "A tiny demo package for tests", "license": "MIT",
     "text": MARKDOWN},
    # nothing to say: no summary, unknown license, no version, a README of badges and code only
    {"package": "empty-pkg", "summary": "empty-pkg", "license": "UNKNOWN",
     "text": "[![CI](https://img.shields.io/badge/ci-passing-green.svg)](https://ci.example.org)\n\n"
             "```python\nimport empty_pkg\n```\n\n# Usage\n\n- one\n- two\n"},
    {"package": "longpkg", "version": "2.0", "summary": "Read big files", "license": "Apache-2.0",
     "text": "# longpkg\n\n" + LONG_SENTENCE * 12},
]


def _answers(table: pa.Table) -> dict[tuple[str, str], str]:
    return {(r["package"], r["kind"]): r["messages"][-1]["content"] for r in table.to_pylist()}


def test_schema_roles_and_order():
    table = chat_table(_corpus(ROWS))
    assert table.schema == SCHEMA
    assert table.schema.field("messages").type == pa.list_(
        pa.struct([("role", pa.string()), ("content", pa.string())]))
    rows = table.to_pylist()
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][0]["content"] == SYSTEM_PROMPT
        assert row["package"] in row["messages"][1]["content"]
    keys = [(r["package"], r["kind"]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert set(keys) == {("demo-pkg", "license"), ("demo-pkg", "overview"), ("demo-pkg", "summary"),
                         ("demo-pkg", "version"), ("longpkg", "license"), ("longpkg", "overview"),
                         ("longpkg", "summary"), ("longpkg", "version"), ("rstpkg", "license"),
                         ("rstpkg", "overview"), ("rstpkg", "summary"), ("rstpkg", "version")}
    no_system = chat_table(_corpus(ROWS), system=None).to_pylist()
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in no_system)


def test_answers_are_cleaned_of_markup():
    got = _answers(chat_table(_corpus(ROWS)))
    assert got[("demo-pkg", "overview")] == ("demo-pkg turns CSV files into Arrow tables without copying data. "
                                             "It streams rows lazily, so memory use stays flat.")
    assert got[("rstpkg", "overview")] == ("rstpkg is a scheduler for small batch jobs on one machine, see the docs. "
                                           "It keeps its state in a single SQLite file.")
    assert got[("demo-pkg", "summary")] == "demo-pkg is a Python package: A tiny demo package for tests."
    assert got[("demo-pkg", "license")] == "demo-pkg is released under MIT."
    assert got[("rstpkg", "license")] == "rstpkg is released under BSD 3-Clause License."
    assert got[("demo-pkg", "version")] == "This describes demo-pkg version 1.2.3."
    junk = ("http", "shields", "![", "[![", "```", "`", "**", "<", ">", "::", "# ", "pip install", "import ",
            "Copyright", "=====")
    for answer in got.values():
        assert not any(j in answer for j in junk), answer


def test_overview_is_capped_at_a_sentence_boundary():
    got = _answers(chat_table(_corpus(ROWS)))[("longpkg", "overview")]
    assert 300 < len(got) <= build_chat.MAX_OVERVIEW_CHARS
    assert got.endswith("worker thread.")
    assert got == (LONG_SENTENCE * (len(got) // len(LONG_SENTENCE) + 1)).strip()
    one_long_sentence = "Hugepkg " + "does a great many things and " * 40 + "then stops."
    capped = overview(one_long_sentence, "hugepkg")
    assert len(capped) <= build_chat.MAX_OVERVIEW_CHARS + 1 and capped.endswith("…")


def test_rows_with_nothing_to_say_are_skipped():
    table = chat_table(_corpus(ROWS))
    assert "empty-pkg" not in table.column("package").to_pylist()
    only_empty = chat_table(_corpus([ROWS[2]]))
    assert only_empty.num_rows == 0 and only_empty.schema == SCHEMA
    partial = _answers(chat_table(_corpus([{"package": "bare", "version": "3.1", "license": "",
                                            "summary": "bare", "text": "# bare\n\nSee the docs."}])))
    assert partial == {("bare", "version"): "This describes bare version 3.1."}


def test_deterministic_whatever_the_row_order():
    first = chat_table(_corpus(ROWS))
    shuffled = list(ROWS)
    random.Random(7).shuffle(shuffled)
    assert chat_table(_corpus(shuffled)).equals(first)
    assert chat_table(_corpus(ROWS)).equals(first)


def test_max_packages_and_bad_input():
    # packages with nothing to say (empty-pkg) do not count
    assert chat_table(_corpus(ROWS), max_packages=1).column("package").unique().to_pylist() == ["demo-pkg"]
    assert chat_table(_corpus(ROWS), max_packages=2).column("package").unique().to_pylist() == ["demo-pkg", "longpkg"]
    assert chat_table(_corpus(ROWS), max_packages=9).equals(chat_table(_corpus(ROWS)))
    with pytest.raises(lakeray.InvalidArgument, match="max_packages"):
        chat_table(_corpus(ROWS), max_packages=0)
    with pytest.raises(lakeray.InvalidArgument, match="text"):
        chat_table(pa.table({"package": ["x"]}))
    with pytest.raises(SystemExit):
        build_chat.main(["--max-packages", "0"])


def test_real_corpus_gives_many_conversations():
    source = corpus()
    table = chat_table(source)
    assert table.schema == SCHEMA
    assert table.num_rows > 100 and table.num_rows >= 2 * source.num_rows
    assert set(table.column("kind").to_pylist()) == {"summary", "overview", "license", "version"}
    for row in table.to_pylist():
        assert [m["role"] for m in row["messages"]][-2:] == ["user", "assistant"]
        answer = row["messages"][-1]["content"]
        assert answer.strip() == answer and len(answer) >= 5, row
        assert "](" not in answer and "```" not in answer and ".. image::" not in answer, row
        if row["kind"] == "overview":
            assert len(answer) <= build_chat.MAX_OVERVIEW_CHARS + 1, row
    assert chat_table(source, max_packages=5).column("package").unique().to_pylist() == \
        table.column("package").unique().to_pylist()[:5]
