"""MLflow's search grammar: filter strings, ``order_by`` clauses, paging.

A small tokenizer and a recursive-descent parser turn a filter such as
``metrics.loss < 0.5 AND params.lr = '0.01' AND tags.`my tag` LIKE 'a%'`` into a list of
:class:`Comparison` values; :mod:`lakeray.tracking.filters` compiles those into SQLAlchemy
clauses with bound parameters. Nothing here builds SQL text, so a filter can only ever be
a value or a parse error.

The grammar (what MLflow accepts, plus ``IN`` lists on every string field)::

    filter     := clause ( AND clause )*
    clause     := field comparator value | field IS [NOT] NULL
    field      := [entity "."] key          entity: metrics, params, tags, attributes, datasets
    key        := word ( "." word )* | `backticked key` | "quoted key"
    comparator := = | != | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
    value      := 'string' | "string" | number | ( 'string' [, 'string']* )

``OR`` and parentheses are refused, as MLflow refuses them. Which entities, keys and
comparators are valid depends on what is searched: see :data:`RUNS`, :data:`EXPERIMENTS`
and :data:`LOGGED_MODELS`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field

from lakeray.errors import InvalidArgument

MAX_FILTER_LENGTH = 16384
MAX_INT64 = 2**63 - 1
MAX_LIST_VALUES = 1000

NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NULL_OPS = ("IS NULL", "IS NOT NULL")
KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "ASC", "DESC"})

# A field: an unquoted word or a quoted part, then more parts after dots.
_PART = r"(?:[A-Za-z_][\w]*|`[^`]*`)"
_FIELD = re.compile(_PART + r"(?:\.(?:\w+|`[^`]*`|\"(?:[^\"]|\"\")*\"))*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATOR = re.compile(r"<=|>=|!=|<>|==|=|<|>")


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is field, keyword, string, number, op, ``(``, ``)``, ``,``
    or punct (any other character, reported in context by the parser)."""

    kind: str
    text: str
    start: int
    end: int
    value: object = None


@dataclass(frozen=True)
class Comparison:
    """One parsed clause: ``entity`` is metric, param, tag, attribute or dataset."""

    entity: str
    key: str
    op: str
    value: object
    text: str = ""


@dataclass(frozen=True)
class OrderBy:
    """One ``order_by`` entry."""

    entity: str
    key: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass(frozen=True)
class Grammar:
    """What one kind of search accepts: entities, attribute keys and their types."""

    what: str
    entities: dict[str, str]
    string_attributes: frozenset[str]
    numeric_attributes: frozenset[str]
    attribute_aliases: dict[str, str] = field(default_factory=dict)
    orderable_entities: frozenset[str] = frozenset({"attribute"})
    dataset_keys: frozenset[str] = frozenset()

    @property
    def attributes(self) -> frozenset[str]:
        return self.string_attributes | self.numeric_attributes


_ENTITY_ALIASES = {
    "metric": "metric", "metrics": "metric",
    "param": "param", "params": "param", "parameter": "param", "parameters": "param",
    "tag": "tag", "tags": "tag",
    "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute",
    "dataset": "dataset", "datasets": "dataset",
}


def entity_aliases(*names: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    # The "attr" and "run" spellings of attributes are MLflow's for runs only.
    run_only = {"attr", "run"}
    return {alias: canon for alias, canon in _ENTITY_ALIASES.items()
            if canon in names and (alias not in run_only or alias in extra)}


RUNS = Grammar(
    what="runs",
    entities=entity_aliases("metric", "param", "tag", "attribute", "dataset", extra=("attr", "run")),
    string_attributes=frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri"}),
    numeric_attributes=frozenset({"start_time", "end_time"}),
    attribute_aliases={"created": "start_time", "Created": "start_time", "run name": "run_name",
                       "Run name": "run_name", "Run Name": "run_name", "run_uuid": "run_id"},
    orderable_entities=frozenset({"metric", "param", "tag", "attribute"}),
    dataset_keys=frozenset({"name", "digest", "context"}),
)
EXPERIMENTS = Grammar(
    what="experiments",
    entities=entity_aliases("tag", "attribute"),
    string_attributes=frozenset({"name", "experiment_id"}),
    numeric_attributes=frozenset({"creation_time", "last_update_time"}),
)
LOGGED_MODELS = Grammar(
    what="logged models",
    entities=entity_aliases("metric", "param", "tag", "attribute"),
    string_attributes=frozenset({"name", "model_id", "experiment_id", "status", "model_type",
                                 "source_run_id"}),
    numeric_attributes=frozenset({"creation_timestamp", "last_updated_timestamp"}),
    attribute_aliases={"creation_time": "creation_timestamp", "creation_timestamp_ms": "creation_timestamp",
                       "last_updated_timestamp_ms": "last_updated_timestamp",
                       "last_update_time": "last_updated_timestamp"},
    orderable_entities=frozenset({"metric", "attribute"}),
)


# -- tokenizer ------------------------------------------------------------------------------
def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidArgument(f"{what} must be a string")
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidArgument(f"{what} is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}")
    if "\x00" in text:
        raise InvalidArgument(f"{what} must not contain NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{what} is not valid Unicode") from None
    return text


def _quoted(text: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """The string starting at ``text[start] == quote`` (a doubled quote is one quote)."""
    out, i = [], start + 1
    while i < len(text):
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise InvalidArgument(f"invalid {what} {text!r}: unterminated string starting at position {start}")


def tokenize(text: str, what: str = "filter") -> list[Token]:
    """Split ``text`` into tokens; an unterminated string or quoted key is an error."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"":
            value, end = _quoted(text, i, ch, what)
            tokens.append(Token("string", text[i:end], i, end, value))
            i = end
            continue
        # A sign belongs to a number only where a value may start (after an operator,
        # "(" or ","), so "a-b" is never read as "a" and "-b".
        value_position = not tokens or tokens[-1].kind in ("op", "(", ",", "keyword", "punct")
        number = _NUMBER.match(text, i)
        if number and (ch.isdigit() or ch == "." or value_position):
            tokens.append(Token("number", number.group(), i, number.end()))
            i = number.end()
            continue
        if ch == "`" or ch.isalpha() or ch == "_":
            found = _FIELD.match(text, i)
            if found is None:  # a backtick without its closing one
                raise InvalidArgument(f"invalid {what} {text!r}: unterminated `quoted key` at position {i}")
            word = found.group()
            kind = "keyword" if word.upper() in KEYWORDS else "field"
            tokens.append(Token(kind, word, i, found.end()))
            i = found.end()
            continue
        op = _OPERATOR.match(text, i)
        if op:
            tokens.append(Token("op", op.group(), i, op.end()))
            i = op.end()
            continue
        kind = ch if ch in "()," else "punct"
        tokens.append(Token(kind, ch, i, i + 1))
        i += 1
    return tokens


def _split_field(tok: Token) -> list[str]:
    """The parts of a field token, quotes removed: tags.`a b`.c -> ['tags', 'a b', 'c']."""
    parts, text, i = [], tok.text, 0
    while i < len(text):
        if text[i] == "`":
            end = text.index("`", i + 1)
            parts.append(text[i + 1:end])
            i = end + 1
        elif text[i] == '"':
            value, i = _quoted(text, i, '"', "field")
            parts.append(value)
        else:
            end = text.find(".", i)
            end = len(text) if end < 0 else end
            parts.append(text[i:end])
            i = end
        if i < len(text) and text[i] == ".":
            i += 1
    return parts


def resolve_field(grammar: Grammar, tok: Token) -> tuple[str, str]:
    """``(entity, key)`` of a field token under ``grammar``; unknown names are errors."""
    parts = _split_field(tok)
    prefixes = ", ".join(sorted(set(grammar.entities)))
    if len(parts) == 1:  # a bare name is an attribute: run_name, `Run name`, creation_time
        entity, key = "attribute", parts[0]
    else:
        prefix, key = parts[0], ".".join(parts[1:])
        if prefix not in grammar.entities:
            if prefix in _ENTITY_ALIASES:
                raise InvalidArgument(f"{grammar.what} cannot be searched by {prefix!r}; valid prefixes "
                                      f"are {prefixes}")
            raise InvalidArgument(f"invalid entity {prefix!r} in {tok.text!r}: valid prefixes are {prefixes}")
        entity = grammar.entities[prefix]
    if not key:
        raise InvalidArgument(f"empty key in {tok.text!r}")
    if entity == "attribute":
        key = grammar.attribute_aliases.get(key, key)
        if key not in grammar.attributes:
            raise InvalidArgument(f"invalid attribute {key!r}: {grammar.what} have "
                                  f"{', '.join(sorted(grammar.attributes))}")
    elif entity == "dataset" and key not in grammar.dataset_keys:
        raise InvalidArgument(f"invalid dataset key {key!r}: valid keys are {', '.join(sorted(grammar.dataset_keys))}")
    return entity, key


# -- filter parser ------------------------------------------------------------------------------
class _Clause:
    """Recursive-descent parser of one clause (the tokens between two top-level ANDs)."""

    def __init__(self, grammar: Grammar, tokens: list[Token], text: str):
        self.grammar, self.tokens, self.text, self.pos = grammar, tokens, text, 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self, expected: str) -> Token:
        tok = self.peek()
        if tok is None:
            raise InvalidArgument(f"expected {expected} after {self.tokens[-1].text!r}")
        self.pos += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "keyword" and tok.text.upper() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Comparison:
        first = self.next("a field")
        if first.kind != "field":
            raise InvalidArgument(f"expected a field like metrics.<key>, params.<key> or tags.<key>, "
                                  f"got {first.text!r}")
        entity, key = resolve_field(self.grammar, first)
        op, value = self.comparator(), None
        if op not in NULL_OPS:
            value = self.value(op)
        if self.peek() is not None:
            raise InvalidArgument(f"unexpected {self.peek().text!r} after the value")
        return _typed(self.grammar, Comparison(entity, key, op, value, self.text))

    def comparator(self) -> str:
        tok = self.next("a comparator")
        if tok.kind == "op":
            if tok.text in NUMERIC_OPS:
                return tok.text
            raise InvalidArgument(f"unsupported comparator {tok.text!r}")
        if tok.kind == "keyword":
            word = tok.text.upper()
            if word in ("LIKE", "ILIKE", "IN"):
                return word
            if word == "NOT" and self.keyword("IN"):
                return "NOT IN"
            if word == "IS":
                negated = self.keyword("NOT")
                if self.keyword("NULL"):
                    return "IS NOT NULL" if negated else "IS NULL"
                raise InvalidArgument("expected NULL after IS" + (" NOT" if negated else ""))
        raise InvalidArgument(f"unsupported comparator {tok.text!r}")

    def value(self, op: str) -> object:
        tok = self.next("a value")
        if op in ("IN", "NOT IN"):
            if tok.kind != "(":
                raise InvalidArgument(f"{op} needs a parenthesised list like ('a', 'b'), got {tok.text!r}")
            items: list[str] = []
            while True:
                item = self.next("a quoted string")
                if item.kind != "string":
                    raise InvalidArgument(f"{op} lists hold quoted strings, got {item.text!r}")
                items.append(item.value)
                closing = self.next("',' or ')'")
                if closing.kind == ")":
                    break
                if closing.kind != ",":
                    raise InvalidArgument(f"expected ',' or ')' in the {op} list, got {closing.text!r}")
            if len(items) > MAX_LIST_VALUES:
                raise InvalidArgument(f"{op} lists hold at most {MAX_LIST_VALUES} values")
            return tuple(items)
        if tok.kind == "string":
            return tok.value
        if tok.kind == "number":
            return _Num(tok.text)  # typed by the field (see _typed)
        raise InvalidArgument(f"expected a quoted string or a number, got {tok.text!r}")


@dataclass(frozen=True)
class _Num:
    """An unquoted number in a filter, typed once the field is known."""

    text: str


def _number(value: object, what: str) -> float:
    if not isinstance(value, _Num):
        raise InvalidArgument(f"{what} is compared with a number, got {_show(value)}")
    number = float(value.text)
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidArgument(f"{what} is compared with a finite number, got {value.text}")
    return number


def _integer(value: object, what: str) -> int:
    number = _number(value, what)
    if number != int(number) or not -MAX_INT64 <= int(number) <= MAX_INT64:
        raise InvalidArgument(f"{what} is compared with a 64-bit integer (milliseconds), got {value.text}")
    return int(number)


def _show(value: object) -> str:
    if isinstance(value, _Num):
        return value.text
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(v) for v in value) + ")"
    return repr(value)


def _typed(grammar: Grammar, comp: Comparison) -> Comparison:
    """Check the comparator against the field's type and convert the value."""
    what = f"{comp.entity}s.{comp.key}" if comp.entity != "attribute" else comp.key
    numeric = comp.entity == "metric" or (comp.entity == "attribute" and comp.key in grammar.numeric_attributes)
    if comp.op in NULL_OPS:
        if comp.entity not in ("param", "tag"):
            raise InvalidArgument(f"{comp.op} applies to params and tags only, not {what}")
        return comp
    allowed = NUMERIC_OPS if numeric else STRING_OPS
    if comp.op not in allowed:
        raise InvalidArgument(f"comparator {comp.op!r} does not apply to {what}; use one of {', '.join(allowed)}")
    value = comp.value
    if numeric:
        value = _number(value, what) if comp.entity == "metric" else _integer(value, what)
    elif not isinstance(value, (str, tuple)):
        raise InvalidArgument(f"{what} is compared with a quoted string, got {_show(value)}")
    return Comparison(comp.entity, comp.key, comp.op, value, comp.text)


def parse_filter(grammar: Grammar, text: object) -> list[Comparison]:
    """Parse an MLflow filter string into AND-ed comparisons (empty or None: no filter)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    text = _check_text(text, "filter")
    tokens = tokenize(text)
    for tok in tokens:
        if tok.kind == "keyword" and tok.text.upper() == "OR":
            raise InvalidArgument(f"invalid filter {text!r}: OR is not supported; join comparisons with AND")
    clauses: list[list[Token]] = [[]]
    for tok in tokens:
        if tok.kind == "keyword" and tok.text.upper() == "AND":
            clauses.append([])
        else:
            clauses[-1].append(tok)
    out = []
    for clause in clauses:
        if not clause:
            raise InvalidArgument(f"invalid filter {text!r}: AND must join two comparisons")
        source = text[clause[0].start:clause[-1].end]
        try:
            out.append(_Clause(grammar, clause, source).parse())
        except InvalidArgument as e:
            raise InvalidArgument(f"invalid clause {source!r}: {e.message}") from None
    return out


# -- order_by ---------------------------------------------------------------------------------
def parse_order_by(grammar: Grammar, clauses: object) -> list[OrderBy]:
    """Parse ``order_by`` entries: strings like ``"metrics.loss DESC"``, or (logged models)
    MLflow's ``{"field_name", "ascending", "dataset_name", "dataset_digest"}`` objects."""
    if clauses is None:
        return []
    if isinstance(clauses, (str, dict)) or not isinstance(clauses, (list, tuple)):
        raise InvalidArgument("order_by must be a list")
    if len(clauses) > 20:
        raise InvalidArgument("order_by takes at most 20 entries")
    out: list[OrderBy] = []
    for clause in clauses:
        item = _order_entry(grammar, clause)
        if any((o.entity, o.key) == (item.entity, item.key) for o in out):
            raise InvalidArgument(f"order_by names {item.entity} {item.key!r} twice")
        out.append(item)
    return out


def _order_entry(grammar: Grammar, clause: object) -> OrderBy:
    if isinstance(clause, dict):
        unknown = set(clause) - {"field_name", "ascending", "dataset_name", "dataset_digest"}
        if unknown or not isinstance(clause.get("field_name"), str):
            raise InvalidArgument("order_by objects have field_name (required), ascending, dataset_name, "
                                  "dataset_digest")
        ascending = clause.get("ascending", True)
        if not isinstance(ascending, bool):
            raise InvalidArgument("order_by ascending must be true or false")
        text = _check_text(clause["field_name"], "order_by field_name")
        tokens = tokenize(text, "order_by")
        if len(tokens) != 1:
            raise InvalidArgument(f"invalid order_by field_name {text!r}")
        extra = {k: _check_text(clause[k], f"order_by {k}") for k in ("dataset_name", "dataset_digest")
                 if clause.get(k) is not None}
    else:
        text = _check_text(clause, "order_by entry")
        tokens = tokenize(text, "order_by")
        ascending, extra = True, {}
        if len(tokens) == 2 and tokens[1].kind == "keyword" and tokens[1].text.upper() in ("ASC", "DESC"):
            ascending = tokens[1].text.upper() == "ASC"
            tokens = tokens[:1]
        if len(tokens) != 1:
            raise InvalidArgument(f"invalid order_by clause {text!r}: expected '<field> [ASC|DESC]'")
    if tokens[0].kind != "field":
        raise InvalidArgument(f"invalid order_by clause {text!r}: expected a field")
    try:
        entity, key = resolve_field(grammar, tokens[0])
    except InvalidArgument as e:
        raise InvalidArgument(f"invalid order_by clause {text!r}: {e.message}") from None
    if entity not in grammar.orderable_entities:
        raise InvalidArgument(f"invalid order_by clause {text!r}: {grammar.what} cannot be ordered by {entity}s")
    return OrderBy(entity, key, ascending, extra.get("dataset_name"), extra.get("dataset_digest"))


# -- paging -------------------------------------------------------------------------------------
def max_results(value: object, default: int, limit: int) -> int:
    """Validate ``max_results`` (None or 0: ``default``; above ``limit``: an error, as MLflow)."""
    if value is None:
        return default
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 12:
        value = int(value)  # a query-string parameter of a GET route
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"max_results must be an integer, got {value!r}")
    if value < 0 or value > limit:
        raise InvalidArgument(f"Invalid value {value} for parameter 'max_results' supplied: "
                              f"it must be at most {limit}")
    return value or default


def query_digest(*parts: object) -> str:
    """A short digest of a query's arguments, carried in its page tokens."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def page_token(offset: int, digest: str) -> str:
    """An opaque token for the page starting at ``offset`` of the query ``digest``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset, "q": digest}).encode()).decode()


def page_offset(token: object, digest: str) -> int:
    """The offset a token points at; a token of another query, or garbage, is an error."""
    if token is None or token == "":
        return 0
    if not isinstance(token, str) or len(token) > 512:
        raise InvalidArgument("invalid page_token")
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeEncodeError, binascii.Error):
        raise InvalidArgument("invalid page_token: it was not issued by this server") from None
    offset = data.get("offset") if isinstance(data, dict) else None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_INT64:
        raise InvalidArgument("invalid page_token: it was not issued by this server")
    if data.get("q") != digest:
        raise InvalidArgument("invalid page_token: it belongs to a search with other arguments")
    return offset
