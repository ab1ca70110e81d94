"""The AI gateway's guardrails: what a serving endpoint refuses or rewrites on the way in and out.

Databricks shape (``PUT /api/2.0/serving-endpoints/{name}/ai-gateway``)::

    "guardrails": {"input":  {"pii": {"behavior": "NONE" | "BLOCK" | "MASK"},
                              "invalid_keywords": ["..."], "valid_topics": ["..."], "safety": false},
                   "output": {...the same...}}

Three checks run per side, in this order: PII (e-mail addresses, phone numbers, card numbers that
pass the Luhn check, IBANs that pass the ISO 13616 check), blocked or masked; invalid keywords,
matched case-insensitively as whole words; valid topics, compared by embedding similarity with the
whole text of a request or response. The ``safety`` model is refused: none is available offline.

The texts of a body depend on its API (chat, completion, embeddings, or the free-form
invocations body); :func:`request_texts` and :func:`map_request` (and their response twins) know
where they live. A blocked body raises :class:`GuardrailBlocked`, an HTTP 400 that says which check
fired and never repeats the PII it found.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lakeray.errors import InvalidArgument, Unavailable

#: An embedding model: texts -> one L2-normalised row per text.
Embed = Callable[[list[str]], np.ndarray]

PII_BEHAVIORS = ("NONE", "BLOCK", "MASK")
MAX_KEYWORDS = 100
MAX_TOPICS = 20
MAX_PHRASE = 500
APIS = ("chat", "completion", "embeddings", "invocations")

#: The cosine similarity (all-MiniLM-L6-v2, normalised) at which a text is on one of the topics.
#: Measured with the topics "billing and invoices" and "shipping and delivery": plainly unrelated
#: requests (capital of France 0.11, a poem about the sea 0.13, a joke 0.11, the weather 0.19,
#: "hello" 0.20) stay at or below 0.20, while on-topic ones score 0.29-0.62 (a bill that is too
#: high 0.29, a parcel that is late 0.45, a package arriving 0.56, charged twice 0.55). 0.25 sits
#: in that gap, leaning towards letting weakly worded on-topic questions through rather than
#: blocking customers; a request that only brushes a topic ("a refund for the extra charge", 0.23)
#: can still fall below it, so topics are best written the way users phrase them.
TOPIC_THRESHOLD = 0.25


class GuardrailBlocked(InvalidArgument):
    """A request or response was refused by the endpoint's guardrails (HTTP 400)."""


# --- configuration ----------------------------------------------------------------------------

_TOP_KEYS = ("input", "output")
_SIDE_KEYS = ("pii", "invalid_keywords", "valid_topics", "safety")


def _phrases(value: object, where: str, what: str, limit: int) -> list[str]:
    """A list of up to ``limit`` non-empty strings of at most MAX_PHRASE characters, deduplicated."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidArgument(f"{where}: expected a list of non-empty strings")
    if len(value) > limit:
        raise InvalidArgument(f"{where}: at most {limit} {what}, got {len(value)}")
    out: list[str] = []
    for v in value:
        v = v.strip()
        if len(v) > MAX_PHRASE:
            raise InvalidArgument(f"{where}: each of at most {MAX_PHRASE} characters, got one of {len(v)}")
        # Case-insensitive duplicates would only run the same check twice.
        if v.lower() not in (o.lower() for o in out):
            out.append(v)
    return out


def _side(raw: object, where: str) -> dict | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: expected an object")
    for key in raw:
        if key not in _SIDE_KEYS:
            raise InvalidArgument(f"{where}.{key}: unknown field")
    safety = raw.get("safety")
    if safety is not None and not isinstance(safety, bool):
        raise InvalidArgument(f"{where}.safety: expected true or false")
    if safety:
        raise InvalidArgument(f"{where}.safety: no safety model is available offline; "
                              "use invalid_keywords and valid_topics")
    pii = raw.get("pii")
    behavior = "NONE"
    if pii is not None:
        if not isinstance(pii, dict):
            raise InvalidArgument(f"{where}.pii: expected an object")
        for key in pii:
            if key != "behavior":
                raise InvalidArgument(f"{where}.pii.{key}: unknown field")
        value = pii.get("behavior", "NONE")  # Databricks treats a missing behavior as NONE
        if not isinstance(value, str) or value.upper() not in PII_BEHAVIORS:
            raise InvalidArgument(f"{where}.pii.behavior: expected NONE, BLOCK or MASK")
        behavior = value.upper()
    keywords = _phrases(raw.get("invalid_keywords"), f"{where}.invalid_keywords", "keywords", MAX_KEYWORDS)
    topics = _phrases(raw.get("valid_topics"), f"{where}.valid_topics", "topics", MAX_TOPICS)
    if behavior == "NONE" and not keywords and not topics:
        return None
    return {"pii": {"behavior": behavior}, "invalid_keywords": keywords, "valid_topics": topics}


def normalise_guardrails(raw: object) -> dict | None:
    """Check a Databricks ``guardrails`` object and return ``{"input": side, "output": side}``.

    A side is ``{"pii": {"behavior": ...}, "invalid_keywords": [...], "valid_topics": [...]}``,
    or None when it is absent or checks nothing; None (or ``{}``) configures no guardrails and
    gives None. Raises :class:`InvalidArgument` naming the offending field.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidArgument("guardrails: expected an object")
    for key in raw:
        if key not in _TOP_KEYS:
            raise InvalidArgument(f"guardrails.{key}: unknown field")
    sides = {key: _side(raw.get(key), f"guardrails.{key}") for key in _TOP_KEYS}
    return sides if any(sides.values()) else None


# --- PII --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pii:
    """One piece of personal data found in a text: its kind and where it is."""

    kind: str  # "EMAIL" | "PHONE" | "CARD_NUMBER" | "IBAN"
    start: int
    end: int
    text: str


_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"
                    r"(?![\w-])")
# Runs of digit groups joined by single spaces or dashes; which part of a run is a card is decided
# by _cards, because a card is often written next to other numbers ("... 1111 exp 12 cvv 123").
_DIGIT_RUN = re.compile(r"(?<!\w)\d+(?:[ -]\d+)*(?!\w)")
# An IBAN written compactly (one token) or in groups of four; _ibans picks the valid prefix.
_IBAN_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}[A-Z0-9]*(?: [A-Z0-9]+)*")
# Phones need a leading "+" or the North-American 3-3-4 layout with separators, so that years,
# prices, decimals and ISO dates (4-2-2) never look like one.
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}(?!\d|[.-]\d)")
_PHONE_NANP = re.compile(r"(?<![\w.+-])(?:1[-. ])?(?:\(\d{3}\) ?\d{3}[-. ]\d{4}|\d{3}(?P<sep>[-. ])\d{3}(?P=sep)\d{4})"
                         r"(?![\w]|[.-]\d)")


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum that every card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """Whether a compact upper-case IBAN passes the ISO 13616 mod-97 check."""
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _cards(text: str) -> list[tuple[int, int]]:
    spans = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in re.finditer(r"\d+", run.group())]
        i = 0
        while i < len(groups):
            found = None
            # The longest run of whole groups starting here that looks like a card and passes Luhn.
            for j in range(len(groups), i, -1):
                part = groups[i:j]
                digits = "".join(text[a:b] for a, b in part)
                seps = {text[part[k][1]] for k in range(len(part) - 1)}
                # Separated groups of 1-2 digits are lists of small numbers, not cards.
                shaped = len(part) == 1 or (len(seps) == 1 and all(b - a >= 3 for a, b in part))
                if 13 <= len(digits) <= 19 and shaped and luhn_ok(digits):
                    found = j
                    break
            if found is None:
                i += 1
            else:
                spans.append((groups[i][0], groups[found - 1][1]))
                i = found
    return spans


def _ibans(text: str) -> list[tuple[int, int]]:
    spans = []
    for run in _IBAN_RUN.finditer(text):
        tokens = run.group().split(" ")
        # Try the longest prefix of tokens first: words in capitals can follow an IBAN.
        for k in range(len(tokens), 0, -1):
            compact = "".join(tokens[:k])
            end = run.start() + len(" ".join(tokens[:k]))
            grouped = k == 1 or (all(len(t) == 4 for t in tokens[:k - 1]) and 1 <= len(tokens[k - 1]) <= 4)
            if 15 <= len(compact) <= 34 and grouped and not text[end:end + 1].isalnum() and iban_ok(compact):
                spans.append((run.start(), end))
                break
    return spans


def _phones(text: str) -> list[tuple[int, int]]:
    # International numbers first: "+1 555 123 4567" is one phone, not "+1 " and a local one.
    spans = [m.span() for m in _PHONE_INTL.finditer(text) if 7 <= sum(ch.isdigit() for ch in m.group()) <= 15]
    return spans + [m.span() for m in _PHONE_NANP.finditer(text)]


def find_pii(text: str) -> list[Pii]:
    """The PII in ``text``, in order and non-overlapping.

    Where two finders claim the same characters the earlier one in this order wins: e-mail, IBAN,
    card number, phone; so a valid card number is never reported (or masked) as a phone.
    """
    taken: list[Pii] = []
    for kind, spans in (("EMAIL", [m.span() for m in _EMAIL.finditer(text)]), ("IBAN", _ibans(text)),
                        ("CARD_NUMBER", _cards(text)), ("PHONE", _phones(text))):
        for start, end in spans:
            if all(end <= p.start or start >= p.end for p in taken):
                taken.append(Pii(kind, start, end, text[start:end]))
    return sorted(taken, key=lambda p: p.start)


def mask_pii(text: str) -> str:
    """``text`` with each piece of PII replaced by its kind in brackets, e.g. ``[EMAIL]``."""
    out, last = [], 0
    for p in find_pii(text):
        out += [text[last:p.start], f"[{p.kind}]"]
        last = p.end
    return "".join(out) + text[last:]


# --- keywords and topics ----------------------------------------------------------------------


def _keyword_pattern(keyword: str) -> re.Pattern:
    # Lookarounds instead of \b so that keywords starting or ending in punctuation ("c++") still
    # need a word boundary on the outside; any run of whitespace matches a space in a phrase.
    body = r"\s+".join(re.escape(w) for w in keyword.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def find_keyword(keywords: list[str], texts: list[str]) -> str | None:
    """The first of ``keywords`` that occurs in one of ``texts`` as a whole word or phrase."""
    for keyword in keywords:
        pattern = _keyword_pattern(keyword)
        if any(pattern.search(t) for t in texts):
            return keyword
    return None


def on_topic(topics: list[str], text: str, embed: Embed) -> bool:
    """Whether ``text`` is close enough to one of ``topics`` (cosine similarity >= TOPIC_THRESHOLD)."""
    vectors = np.asarray(embed([*topics, text]), dtype=np.float32)
    return float(np.max(vectors[:-1] @ vectors[-1])) >= TOPIC_THRESHOLD


# --- the checks -------------------------------------------------------------------------------


def _blocked(where: str, reason: str) -> GuardrailBlocked:
    return GuardrailBlocked(f"{where} blocked by the endpoint's guardrails: {reason}")


def check(side: dict | None, texts: list[str], embed: Embed | None = None, where: str = "input") -> None:
    """Raise :class:`GuardrailBlocked` if ``texts`` break one side's guardrails.

    PII is only refused here when the behavior is BLOCK (masking rewrites the body, see
    :func:`apply_request`). Keywords and PII are looked for in each text; the topic check takes
    all texts as one, so a multi-turn conversation is judged as a whole. ``where`` ("input" or
    "output") starts the message. Raises :class:`Unavailable` if topics are configured but no
    ``embed`` function was given.
    """
    if side is None:
        return
    if side["pii"]["behavior"] == "BLOCK":
        kinds = list(dict.fromkeys(p.kind for t in texts for p in find_pii(t)))
        if kinds:
            # Only the kinds: the message goes back to the caller and into logs.
            raise _blocked(where, f"PII ({', '.join(kinds)})")
    keyword = find_keyword(side["invalid_keywords"], texts)
    if keyword is not None:
        raise _blocked(where, f"invalid keyword {keyword!r}")
    topics = side["valid_topics"]
    if topics:
        if embed is None:
            raise Unavailable("guardrails: the topic model is not available")
        whole = "\n".join(texts)
        # A body without text (token ids, an embeddings response) has no topic to be off.
        if whole.strip() and not on_topic(topics, whole, embed):
            raise _blocked(where, f"off topic (valid topics: {', '.join(topics)})")


def apply_request(side: dict | None, api: str, body: object, embed: Embed | None = None) -> object:
    """Run one endpoint's input guardrails on a request body: the body to pass on (masked if
    the PII behavior is MASK), or :class:`GuardrailBlocked`."""
    if side is None:
        return body
    if side["pii"]["behavior"] == "MASK":
        body = map_request(api, body, mask_pii)
    check(side, request_texts(api, body), embed, "input")
    return body


def apply_response(side: dict | None, api: str, body: object, embed: Embed | None = None) -> object:
    """Run one endpoint's output guardrails on a response body: the body to return (masked if
    the PII behavior is MASK), or :class:`GuardrailBlocked`."""
    if side is None:
        return body
    if side["pii"]["behavior"] == "MASK":
        body = map_response(api, body, mask_pii)
    check(side, response_texts(api, body), embed, "output")
    return body


# --- where the texts of a body are ------------------------------------------------------------


def _walk(value: object, fn: Callable[[str], str]) -> object:
    """Every string in a JSON value (dict values and list items, not keys) through ``fn``."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _walk(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fn) for v in value]
    return value


def _map_strings(value: object, fn: Callable[[str], str]) -> object:
    """A string or a list of strings through ``fn``; anything else (token ids) is left alone."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [fn(v) if isinstance(v, str) else v for v in value]
    return value


def _map_content(message: object, fn: Callable[[str], str]) -> None:
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = fn(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                part["text"] = fn(part["text"])


def _choices(body: dict) -> list:
    choices = body.get("choices")
    return choices if isinstance(choices, list) else []


def map_request(api: str, body: object, fn: Callable[[str], str]) -> object:
    """A copy of a request body with each of its texts (see :func:`request_texts`) through ``fn``."""
    if api not in APIS:
        raise ValueError(f"unknown api {api!r}")
    # Work on a deep copy: the caller may still hold (and log, or retry with) the original.
    body = copy.deepcopy(body)
    if api == "invocations":
        return _walk(body, fn)
    if not isinstance(body, dict):
        return body
    if api == "chat" and isinstance(body.get("messages"), list):
        for message in body["messages"]:
            _map_content(message, fn)
    elif api == "completion" and "prompt" in body:
        body["prompt"] = _map_strings(body["prompt"], fn)
    elif api == "embeddings" and "input" in body:
        body["input"] = _map_strings(body["input"], fn)
    return body


def map_response(api: str, body: object, fn: Callable[[str], str]) -> object:
    """A copy of a response body with each of its texts (see :func:`response_texts`) through ``fn``."""
    if api not in APIS:
        raise ValueError(f"unknown api {api!r}")
    body = copy.deepcopy(body)
    if api == "invocations":
        if isinstance(body, dict) and "predictions" in body:
            body["predictions"] = _walk(body["predictions"], fn)
            return body
        return _walk(body, fn)
    if not isinstance(body, dict):
        return body
    for choice in _choices(body):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if api == "chat" and isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = fn(message["content"])
        elif api == "completion" and isinstance(choice.get("text"), str):
            choice["text"] = fn(choice["text"])
    return body


def _collect(mapper: Callable, api: str, body: object) -> list[str]:
    # The mappers are the single description of where texts live; collecting is mapping with an
    # identity function that remembers what it saw.
    texts: list[str] = []

    def keep(text: str) -> str:
        texts.append(text)
        return text

    mapper(api, body, keep)
    return texts


def request_texts(api: str, body: object) -> list[str]:
    """The texts of a request body: chat message contents (strings and text parts), the
    completion prompt(s), the embeddings input strings, or every string in an invocations body."""
    return _collect(map_request, api, body)


def response_texts(api: str, body: object) -> list[str]:
    """The texts of a response body: chat ``choices[].message.content``, completion
    ``choices[].text``, none for embeddings, or every string of an invocations body's
    ``predictions`` (the whole body when it has none)."""
    return _collect(map_response, api, body)
