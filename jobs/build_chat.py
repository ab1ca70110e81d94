"""python -m lakeray.jobs.build_chat --source main.default.package_docs --table main.default.package_chat

Build a small chat dataset for supervised fine-tuning (SmolLM2-135M-Instruct and the like) from
the package corpus that ``lakeray.jobs.load_corpus`` writes. Each package gives a few
question/answer conversations drawn from its own metadata and README, in the OpenAI chat format:

- ``summary``  "What is <package>?"                      -> its one-line summary
- ``overview`` "Give a short overview of <package>."     -> the first prose paragraph(s) of its README,
  with headings, badges, images, HTML, code blocks and rst directives removed, capped at about
  600 characters at a sentence boundary
- ``license``  "What license does <package> use?"        -> "<package> is released under <license>."
- ``version``  "Which version of <package> is described here?" -> its version

A conversation whose answer would be empty or junk is left out. There is no randomness: the same
corpus gives the same table, sorted by package and kind. Run it as a Ray job too:

    ray job submit --working-dir . -- python -m lakeray.jobs.build_chat --source main.default.package_docs --table main.default.package_chat

The table (columns ``messages`` list<struct<role, content>>, ``package``, ``kind``) is created if
missing and otherwise overwritten; the write records lineage from the source table to the table
with this job's id.
"""

from __future__ import annotations

import argparse
import html
import re

import pyarrow as pa

from lakeray.errors import InvalidArgument
from lakeray.job_context import job_id as current_job_id

SYSTEM_PROMPT = "You are a helpful assistant who answers questions about Python packages."
MAX_OVERVIEW_CHARS = 600
MIN_OVERVIEW_CHARS = 200  # a shorter first paragraph is joined with the next ones of its section

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMA = pa.schema([("messages", pa.list_(MESSAGE)), ("package", pa.string()), ("kind", pa.string())])

QUESTIONS = {
    "summary": "What is {package}?",
    "overview": "Give a short overview of {package}.",
    "license": "What license does {package} use?",
    "version": "Which version of {package} is described here?",
}

# -- cleaning README text ------------------------------------------------------------------
_CODE_MARK = "\x00code"  # stands in for a removed code block, so it still splits paragraphs
_HTML_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.S)
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,}).*?(^[ \t]*\1[ \t]*$|\Z)", re.S | re.M)
_HTML_BLOCK = re.compile(r"<(pre|script|style)\b.*?(</\1\s*>|\Z)", re.S | re.I)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_BLOCKQUOTE = re.compile(r"^[ \t]*>(?!>)[ \t]?(\[![A-Z]+\])?", re.M)
_MD_IMAGE = re.compile(r"!\[[^\]]*\](\([^)]*\)|\[[^\]]*\])")
_MD_LINK = re.compile(r"\[([^\]]*)\](\([^)]*\)|\[[^\]]*\])")
_MD_BRACKETS = re.compile(r"(?<![\w\]])\[([^\]]+)\](?![(\[])")
_MD_LINK_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*\S+")
_RST_LINK = re.compile(r"`([^`<]*?)\s*<[^>`]*>`__?")
_RST_ROLE = re.compile(r":[\w.:+-]+:`([^`]*)`")
_RST_REF = re.compile(r"`([^`]+)`__?")
_RST_NAMED_REF = re.compile(r"(?<=\w)__?(?=[\s,.;:!?)]|$)")
_RST_SUBST = re.compile(r"\|[^|\s][^|]*\|_{0,2}")
_INLINE_CODE = re.compile(r"`{1,2}([^`]+)`{1,2}")
_EMPHASIS = re.compile(r"(?<![\w*])(\*\*\*|\*\*|\*)(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)_([^_\s][^_]*?)_(?!\w)")
_URL = re.compile(r"((https?|ftp)://|www\.)[^\s)\]>]*[^\s)\]>.,;:!?'\"]")
_UNDERLINE = re.compile(r"""^\s*([=\-~^"'`*+#:._])\1{2,}\s*$""")
_ATX_HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")
_LIST_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)]|[a-z][.)])\s")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_CODE_DIRECTIVE = re.compile(r"^\.\.\s+(code|code-block|sourcecode|ipython|doctest|literalinclude|testcode)::")
_QUIET_DIRECTIVE = re.compile(r"^\.\.\s+(\|[^|]+\|\s+)?(image|figure|_[^:]*|raw|include|meta)::|^\.\.\s+_|^\.\.(\s+[^:]*)?$")
_BOILERPLATE = re.compile(
    r"^(copyright|\(c\)|©|licensed under|permission is hereby|this (program|library|software) is free"
    r"|all rights reserved|table of contents|note:|warning:"
    r"|(see|for more|please|check out|visit|read|click|join|follow|you can find)\b)", re.I)
_PROMPT = re.compile(r"^\s*(>>>|\$ |In \[\d*\]:)", re.M)
_CODE_HINT = re.compile(r">>>|^\s*\$ |^\s*(import|from|def|class|pip|conda)\s|[{};]\s*$|\w\(.*\)\s*$", re.M)
#: What the first sentence of a paragraph that is not in the introduction must not be about to stand for the package.
_OFF_TOPIC = re.compile(r"licensed under|offered under|under the same terms|\blicense (is|v)|thank|contribut|sponsor"
                        r"|tidelift|donat|funding|office hours|code of conduct|stack overflow|develops and supports", re.I)
#: Words that do not identify a package even when they are part of its name.
_GENERIC_NAMES = {"python", "py", "lib", "client", "core", "api", "sdk", "binary", "google", "types"}


def _inline(text: str) -> str:
    """Markup inside a paragraph reduced to its words."""
    text = _MD_IMAGE.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_BRACKETS.sub(r"\1", text)
    text = _RST_LINK.sub(r"\1", text)
    text = _RST_ROLE.sub(r"\1", text)
    text = _RST_REF.sub(r"\1", text)
    text = _RST_SUBST.sub("", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _UNDERSCORE_EMPHASIS.sub(r"\1", text)
    text = _RST_NAMED_REF.sub("", text)
    text = _URL.sub("", text)
    text = html.unescape(text)
    text = re.sub(r"\\(?=\s|$)", "", text)  # markdown hard line break
    text = re.sub(r"\(\s*\)|\[\s*\]", "", text)  # brackets emptied by the removals above
    text = re.sub(r"\s+([,.;:!?])(?=\s|$)", r"\1", text)
    text = re.sub(r"[:,;]\s*([.:])(?=\s|$)", r"\1", text)  # "see: <link>." -> "see."
    return re.sub(r"\s+", " ", text).strip()


def _is_prose(text: str) -> bool:
    words = text.split()
    if len(text) < 40 or len(words) < 8 or _BOILERPLATE.match(text):
        return False
    chars = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in chars)
    return letters / len(chars) >= 0.7 and (bool(_SENTENCE_END.search(text)) or text.endswith(":"))


def paragraphs(text: str) -> list[tuple[str, str]]:
    """The blocks of a README (markdown, rst or plain) in order, as ``(kind, text)``: kind
    ``"prose"`` with the paragraph cleaned of markup, or ``"heading"``, ``"code"`` or ``"other"``
    (lists, tables, directives, short or non-prose lines) with ``""``. Badges, images, HTML
    comments and link targets leave nothing."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4)
    text = _HTML_COMMENT.sub("", text)
    text = _FENCE.sub(f"\n\n{_CODE_MARK}\n\n", text)
    text = _HTML_BLOCK.sub(f"\n\n{_CODE_MARK}\n\n", text)
    text = _HTML_TAG.sub(" ", text)
    text = _BLOCKQUOTE.sub("", text)
    out: list[tuple[str, str]] = []
    literal = False  # inside an indented rst literal block or directive body
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        indented = all(line[:1] == " " for line in lines)
        if literal and indented:
            continue
        literal = False
        first = lines[0].strip()
        if first == _CODE_MARK:
            out.append(("code", ""))
            continue
        if first.startswith(".."):  # rst directive, comment, substitution or link target
            literal = True
            if _CODE_DIRECTIVE.match(first):
                out.append(("code", ""))
            elif not _QUIET_DIRECTIVE.match(first):
                out.append(("other", ""))
            continue
        if lines[-1].rstrip().endswith("::"):  # "Install it with::" introduces a literal block
            literal = True
        kept, heading = [], False
        for line in lines:
            if _UNDERLINE.match(line):  # setext / rst title underline (or overline)
                if kept and not _UNDERLINE.match(kept[-1]):
                    kept.pop()
                heading = True
            elif _ATX_HEADING.match(line):
                heading = True
            elif not _MD_LINK_DEF.match(line):
                kept.append(line)
        if heading:
            out.append(("heading", ""))
        if not kept:
            continue
        if _PROMPT.search("\n".join(kept)) or (indented and _CODE_HINT.search("\n".join(kept))):
            out.append(("code", ""))
            continue
        stripped = [line.strip() for line in kept]
        cleaned = _inline(" ".join(stripped))
        if not any(c.isalpha() for c in cleaned):
            continue  # badges, images, rules: nothing to read
        if any(line.startswith(("|", "+-", "+=")) for line in stripped) or _LIST_ITEM.match(kept[0]):
            out.append(("other", ""))  # table or list: not the prose we want
            continue
        if cleaned.endswith("::"):
            cleaned = cleaned[:-1]
        out.append(("prose", cleaned) if _is_prose(cleaned) else ("other", ""))
    return out


def cap_sentences(text: str, limit: int = MAX_OVERVIEW_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters at a sentence end (at a word, with an
    ellipsis, when even the first sentence is longer); a trailing clause with no sentence end
    (such as "Install it with:") is dropped, or its colon made a full stop if it is all there is."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if len(text) <= limit and ends and ends[-1] == len(text):
        return text
    fits = [e for e in ends if e <= limit]
    if fits:
        return text[:fits[-1]].strip()
    if len(text) > limit:
        return text[:limit].rsplit(" ", 1)[0].rstrip(",;:- ") + "…"
    return _sentence(text.rstrip(":;, "))


def _name_keys(package: str) -> set[str]:
    keys = {_norm(package).replace(" ", "")}
    keys.update(part for part in re.split(r"[-_.]+", package.lower()) if part not in _GENERIC_NAMES)
    return {k for k in keys if len(k) >= 2}


def _names(text: str, keys: set[str], words: int | None = None) -> bool:
    """Whether one of the first ``words`` words of ``text`` is (or, for 4+ letters, contains)
    the package's name."""
    for word in text.split()[:words]:
        w = re.sub(r"[\W_]+", "", word.lower())
        if any(w == k or (len(k) >= 4 and k in w) for k in keys):
            return True
    return False


def overview(text: str, package: str = "", summary: str = "", limit: int = MAX_OVERVIEW_CHARS) -> str:
    """A short overview of a package from its README, or ``""`` when it has no real prose.

    It takes the first prose paragraph of the introduction (before any code, list or table;
    headings and badges may come first) that does not just repeat the summary; failing that, the
    first of the first eight prose paragraphs that opens with the package's name ("Ray is ..."),
    then the first that names it. A paragraph that starts in lower case (a sentence cut by a
    code block) counts only when it opens with the name; one that ends in a colon (it leads into
    a list or code) never does. The paragraphs that follow in the same run are joined while the
    text is shorter than ``MIN_OVERVIEW_CHARS``; the result is capped at ``limit`` characters at
    a sentence end."""
    blocks = paragraphs(text)
    keys, norm_summary = _name_keys(package) if package else set(), _norm(summary)
    candidates, intro, seen = [], True, 0  # candidates: (tier, block index)
    for i, (kind, para) in enumerate(blocks):
        if kind in ("code", "other"):
            intro = False
        if kind != "prose":
            continue
        seen += 1
        if seen > 8 and not intro:
            break
        if (norm_summary and _norm(para) == norm_summary) or para.endswith(":"):
            continue
        opens = bool(keys) and _names(para, keys, 3)
        if para[0].isalpha() and para[0].islower() and not opens:
            continue
        if intro:
            candidates.append((0, i))
            break
        if _OFF_TOPIC.search(_first_sentence(para)):
            continue
        if opens:
            candidates.append((1, i))
        elif keys and _names(para, keys):
            candidates.append((2, i))
    if not candidates:
        return ""
    start = min(candidates)[1]
    parts = [blocks[start][1]]
    for kind, para in blocks[start + 1:]:
        if kind != "prose" or sum(len(p) + 1 for p in parts) >= MIN_OVERVIEW_CHARS:
            break
        parts.append(para)
    return cap_sentences(" ".join(parts), limit)


def _first_sentence(text: str) -> str:
    end = _SENTENCE_END.search(text)
    return text[:end.end()] if end else text


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text).strip().lower()


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if not text or text[-1] in ".!?…" else text + "."


def clean_license(value: str) -> str:
    """A short license name from a METADATA License field, or ``""`` when it is unknown or a
    whole license text whose first line names nothing."""
    lines = [line.strip() for line in (value or "").splitlines() if line.strip()]
    if not lines:
        return ""
    name = lines[0].rstrip(".")
    if (len(name) > 80 or _norm(name) in ("", "unknown", "none", "n a", "other", "license", "see license")
            or re.match(r"(copyright|\(c\)|©|permission|redistribution|this )", name, re.I)):
        return ""
    return name


def clean_summary(value: str, package: str) -> str:
    """A one-line summary fit to be an answer, or ``""`` when it says nothing beyond the name."""
    text = re.sub(r"\s+", " ", _inline(value or "")).strip()
    norm = _norm(text)
    if len(text.split()) < 2 or norm in ("unknown", "none", _norm(package)):
        return ""
    return _sentence(text)


def answers(row: dict) -> dict[str, str]:
    """The answer of each template for one corpus row (templates with nothing to say omitted)."""
    package = (row.get("package") or "").strip()
    out: dict[str, str] = {}
    summary = clean_summary(row.get("summary") or "", package)
    if summary:  # "Tornado is a Python web framework ..." says it; "Fast progress meter." needs a subject
        own_name = _names(summary, {_norm(package).replace(" ", "")}, 1)
        out["summary"] = summary if own_name else f"{package} is a Python package: {summary}"
    text = overview(row.get("text") or "", package, row.get("summary") or "")
    if text:
        out["overview"] = text
    license_name = clean_license(row.get("license") or "")
    if license_name:
        out["license"] = f"{package} is released under {license_name}."
    version = (row.get("version") or "").strip()
    if version and re.fullmatch(r"[\w.+!-]{1,64}", version):
        out["version"] = f"This describes {package} version {version}."
    return out


def chat_table(corpus: pa.Table, max_packages: int | None = None, system: str | None = SYSTEM_PROMPT) -> pa.Table:
    """The chat dataset of a corpus table (columns ``package`` and ``text``; ``summary``,
    ``license`` and ``version`` used when present): one row per (package, kind), sorted by both.
    ``max_packages`` keeps the first packages by name (of those with something to say); ``system`` (``None`` or ``""`` for none)
    opens every conversation."""
    missing = {"package", "text"} - set(corpus.column_names)
    if missing:
        raise InvalidArgument(f"the source table lacks column(s) {sorted(missing)}; "
                              f"it has {corpus.column_names}")
    if max_packages is not None and (isinstance(max_packages, bool) or not isinstance(max_packages, int)
                                     or max_packages < 1):
        raise InvalidArgument(f"max_packages must be a positive integer, got {max_packages!r}")
    by_package: dict[str, dict] = {}
    for row in sorted(corpus.to_pylist(), key=lambda r: ((r.get("package") or "").strip(), r.get("version") or "")):
        name = (row.get("package") or "").strip()
        if name and name not in by_package:
            by_package[name] = row
    head = [{"role": "system", "content": system}] if system else []
    rows, kept = [], 0
    for name in sorted(by_package):
        if max_packages is not None and kept >= max_packages:
            break
        said = sorted(answers(by_package[name]).items())
        kept += bool(said)
        for kind, answer in said:
            rows.append({"messages": head + [{"role": "user", "content": QUESTIONS[kind].format(package=name)},
                                             {"role": "assistant", "content": answer}],
                         "package": name, "kind": kind})
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def build(client, source: str, table: str, max_packages: int | None = None,
          system: str | None = SYSTEM_PROMPT) -> dict:
    """Read ``source`` through ``client``, create or overwrite ``table`` with its chat dataset and
    record lineage ``source`` -> ``table``; returns what was written."""
    import lakeray

    data = chat_table(client.read_table(source), max_packages=max_packages, system=system)
    if data.num_rows == 0:
        raise InvalidArgument(f"{source} gave no conversations: no package has a usable summary, "
                              "README, license or version")
    job_id = current_job_id()
    try:
        client.get_table(table)
        out = client.overwrite(table, data, sources=[f"table:{source}"], job_id=job_id)
    except lakeray.NotFound:
        client.create_table(table, data=data, comment=f"Chat conversations about Python packages, from {source}")
        out = {"version": 1, "num_rows": data.num_rows}
        client.record_lineage("table", source, "table", table, job_id=job_id)
    packages = len(set(data.column("package").to_pylist()))
    return {"table": table, "source": source, "packages": packages, **out}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, connect (over Ray by default, or --url) and build."""
    import lakeray

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="main.default.package_docs", help="corpus table (load_corpus)")
    p.add_argument("--table", default="main.default.package_chat")
    p.add_argument("--max-packages", type=int, default=None, help="keep the first N packages by name (that give a conversation)")
    p.add_argument("--system", default=SYSTEM_PROMPT, help="system message ('' for none)")
    p.add_argument("--url", default=None, help="http://host:port to work over HTTP instead of Ray")
    args = p.parse_args(argv)
    if args.max_packages is not None and args.max_packages < 1:
        p.error("--max-packages must be a positive integer")
    client = lakeray.connect(args.url)
    result = build(client, args.source, args.table, max_packages=args.max_packages, system=args.system)
    print(f"wrote {result['num_rows']} conversations about {result['packages']} packages from "
          f"{result['source']} into {result['table']} (version {result['version']})")


if __name__ == "__main__":
    main()
