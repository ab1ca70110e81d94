"""Searching registered models and model versions with MLflow's filter grammar.

The filter and ``order_by`` text is parsed by :mod:`lakeray.tracking.search` (the same parser
runs use); the parsed comparisons are then applied to the candidate rows here, in Python,
because every candidate must pass a per-model privilege check anyway (EXECUTE, see
:mod:`lakeray.model_registry.service`) and registries hold thousands of models, not millions
of runs. Paging tokens carry an offset and a digest of the query, as for runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lakeray.tracking.search import Comparison, Grammar, OrderBy, entity_aliases

REGISTERED_MODELS = Grammar(
    what="registered models",
    entities=entity_aliases("tag", "attribute"),
    string_attributes=frozenset({"name"}),
    numeric_attributes=frozenset({"creation_timestamp", "last_updated_timestamp"}),
    attribute_aliases={"timestamp": "last_updated_timestamp", "creation_time": "creation_timestamp",
                       "last_update_time": "last_updated_timestamp"},
)
MODEL_VERSIONS = Grammar(
    what="model versions",
    entities=entity_aliases("tag", "attribute"),
    string_attributes=frozenset({"name", "run_id", "source_path", "status", "model_id"}),
    numeric_attributes=frozenset({"version_number", "creation_timestamp", "last_updated_timestamp"}),
    attribute_aliases={"timestamp": "creation_timestamp", "source": "source_path", "version": "version_number",
                       "creation_time": "creation_timestamp", "last_update_time": "last_updated_timestamp"},
)
MAX_RESULTS_LIMIT = 1000
DEFAULT_MODELS_PAGE = 100
DEFAULT_VERSIONS_PAGE = 10000


def _like(pattern: str, ignore_case: bool) -> re.Pattern:
    """SQL LIKE (``%`` any run, ``_`` one character) as a regular expression."""
    body = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _test(comp: Comparison, value: object) -> bool:
    op, want = comp.op, comp.value
    if op == "IS NULL":
        return value is None
    if op == "IS NOT NULL":
        return value is not None
    if value is None:
        # A missing tag is "not equal" to anything: the mlflow client hides prompts from model
        # searches with tags.`mlflow.prompt.is_prompt` != 'true' and expects untagged models back.
        return op in ("!=", "NOT IN")
    if op in ("LIKE", "ILIKE"):
        return _like(want, op == "ILIKE").fullmatch(str(value)) is not None
    if op in ("IN", "NOT IN"):
        return (value in want) == (op == "IN")
    return {"=": value == want, "!=": value != want, "<": value < want, "<=": value <= want,
            ">": value > want, ">=": value >= want}[op]


def matcher(comparisons: list[Comparison], attribute: Callable[[dict, str], object]) -> Callable[[dict], bool]:
    """A predicate over candidate dicts (with a ``tags`` dict) for AND-ed comparisons."""
    def matches(item: dict) -> bool:
        for comp in comparisons:
            value = item["tags"].get(comp.key) if comp.entity == "tag" else attribute(item, comp.key)
            if not _test(comp, value):
                return False
        return True

    return matches


def sort(items: list[dict], order_by: list[OrderBy], attribute: Callable[[dict, str], object],
         default: list[tuple[str, bool]]) -> list[dict]:
    """Stable multi-key sort; ``None`` sorts last in either direction, as MLflow does."""
    keys = [(o.key, o.ascending) for o in order_by] or default
    for key, ascending in reversed(keys):
        present = [i for i in items if attribute(i, key) is not None]
        missing = [i for i in items if attribute(i, key) is None]
        present.sort(key=lambda i, k=key: attribute(i, k), reverse=not ascending)
        items = present + missing
    return items
