"""Secret scopes and secrets without Ray (SQLite and PostgreSQL): the Databricks Secrets API
over HTTP, READ < WRITE < MANAGE, values encrypted at rest and never returned by any route,
every bad input a 4xx that changes nothing."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lakeray.api.app import build_app
from lakeray.api.backend import LocalBackend
from lakeray.errors import InvalidArgument
from lakeray.secrets.service import parse_reference
from lakeray.secrets.tables import secrets

S = "/api/2.0/secrets"


@pytest.fixture
def http(registry, admin):
    from lakeray.tracker import Tracker

    app = build_app(LocalBackend({"registry": registry, "tracker": Tracker(registry.settings)}))

    def as_(name: str | None) -> TestClient:
        client = TestClient(app)
        if name is not None:
            if name != "admin":
                registry.principals.create_principal(admin, name)
            token = registry.principals.create_token(admin, principal=name)["token_value"]
            client.headers["Authorization"] = f"Bearer {token}"
        return client
    return as_


def test_scopes_secrets_and_acls_round_trip_without_ever_returning_a_value(http, registry):
    admin, ann, bob = http("admin"), http("ann"), http("bob")
    assert ann.post(f"{S}/scopes/create", json={"scope": "Team-Keys"}).status_code == 200
    assert ann.post(f"{S}/put", json={"scope": "team-keys", "key": "openai", "string_value": "sk-live-123"}).json() == {}
    raw = base64.b64encode(b"\x00\x01binary").decode()
    assert ann.post(f"{S}/put", json={"scope": "team-keys", "key": "blob", "bytes_value": raw}).status_code == 200
    listed = ann.get(f"{S}/list", params={"scope": "team-keys"}).json()["secrets"]
    assert [s["key"] for s in listed] == ["blob", "openai"] and all(s["last_updated_timestamp"] > 0 for s in listed)
    assert ann.get(f"{S}/scopes/list").json() == {"scopes": [{"name": "team-keys", "backend_type": "DATABRICKS"}]}
    # no route hands a value back, and the value is not stored in the clear
    assert ann.get(f"{S}/get", params={"scope": "team-keys", "key": "openai"}).status_code in (404, 405)
    with registry.db.read() as conn:
        stored = conn.execute(select(secrets.c.value)).scalars().all()
    assert stored and all(b"sk-live-123" not in bytes(v) for v in stored)
    assert registry.secrets.value(registry.principals.caller("ann"), "team-keys", "openai") == "sk-live-123"
    audit = registry.audit.query(action="put_secret")["events"]
    assert [e["detail"]["key"] for e in audit] == ["blob", "openai"] and "sk-live" not in str(audit)
    # bob: nothing until granted; READ lists; WRITE puts; MANAGE deletes the scope
    assert bob.get(f"{S}/list", params={"scope": "team-keys"}).status_code == 403
    assert bob.get(f"{S}/scopes/list").json() == {"scopes": []}
    assert ann.post(f"{S}/acls/put", json={"scope": "team-keys", "principal": "bob", "permission": "READ"}).status_code == 200
    assert bob.get(f"{S}/list", params={"scope": "team-keys"}).status_code == 200
    assert bob.post(f"{S}/put", json={"scope": "team-keys", "key": "x", "string_value": "y"}).status_code == 403
    assert ann.post(f"{S}/acls/put", json={"scope": "team-keys", "principal": "bob", "permission": "WRITE"}).status_code == 200
    assert bob.post(f"{S}/put", json={"scope": "team-keys", "key": "x", "string_value": "y"}).status_code == 200
    assert bob.post(f"{S}/scopes/delete", json={"scope": "team-keys"}).status_code == 403
    assert bob.get(f"{S}/acls/list", params={"scope": "team-keys"}).status_code == 403
    acls = ann.get(f"{S}/acls/list", params={"scope": "team-keys"}).json()["items"]
    assert acls == [{"principal": "ann", "permission": "MANAGE"}, {"principal": "bob", "permission": "WRITE"}]
    assert ann.get(f"{S}/acls/get", params={"scope": "team-keys", "principal": "bob"}).json() == {
        "principal": "bob", "permission": "WRITE"}
    assert ann.post(f"{S}/acls/delete", json={"scope": "team-keys", "principal": "bob"}).status_code == 200
    assert bob.get(f"{S}/list", params={"scope": "team-keys"}).status_code == 403
    assert ann.post(f"{S}/delete", json={"scope": "team-keys", "key": "x"}).status_code == 200
    assert ann.post(f"{S}/delete", json={"scope": "team-keys", "key": "x"}).status_code == 404
    # the admin manages everything; dropping the scope drops its secrets
    assert admin.post(f"{S}/scopes/delete", json={"scope": "team-keys"}).status_code == 200
    with registry.db.read() as conn:
        assert conn.execute(select(secrets.c.key)).all() == []
    assert ann.get(f"{S}/list", params={"scope": "team-keys"}).status_code == 404


@pytest.mark.parametrize("path, body, message", [
    ("/scopes/create", {"scope": "bad scope"}, "invalid secret scope name"),
    ("/scopes/create", {"scope": ".hidden"}, "invalid secret scope name"),
    ("/scopes/create", {"scope": "s", "scope_backend_type": "AZURE_KEYVAULT"}, "scope_backend_type"),
    ("/scopes/create", {"scope": "s", "initial_manage_principal": "users"}, "initial_manage_principal"),
    ("/put", {"scope": "keys", "key": "k"}, "exactly one of string_value or bytes_value"),
    ("/put", {"scope": "keys", "key": "k", "string_value": "a", "bytes_value": "YQ=="}, "exactly one of"),
    ("/put", {"scope": "keys", "key": "k", "bytes_value": "not base64!"}, "bytes_value: expected base64"),
    ("/put", {"scope": "keys", "key": "a/b", "string_value": "v"}, "invalid key"),
    ("/put", {"scope": "keys", "key": "k", "string_value": "v" * (128 * 1024 + 1)}, "the limit is 131072"),
    ("/put", {"scope": "keys", "key": "k", "string_value": "v", "extra": 1}, "extra"),
    ("/acls/put", {"scope": "keys", "principal": "admin", "permission": "OWN"}, "permission: expected READ"),
])
def test_bad_inputs_are_400_and_change_nothing(http, registry, path, body, message):
    admin = http("admin")
    assert admin.post(f"{S}/scopes/create", json={"scope": "keys"}).status_code == 200
    resp = admin.post(S + path, json=body)
    assert resp.status_code == 400 and message in resp.json()["message"], resp.text
    assert "v" * 100 not in resp.text
    assert [s["name"] for s in admin.get(f"{S}/scopes/list").json()["scopes"]] == ["keys"]
    assert admin.get(f"{S}/list", params={"scope": "keys"}).json() == {"secrets": []}
    assert admin.post(f"{S}/put", json={"scope": "nope", "key": "k", "string_value": "v"}).status_code == 404
    assert http(None).post(f"{S}/scopes/create", json={"scope": "x"}).status_code == 401


def test_secret_references():
    assert parse_reference("{{secrets/Team-Keys/openai}}", "f") == ("team-keys", "openai")
    assert parse_reference(" {{ secrets/a/b.c }} ", "f") == ("a", "b.c")
    for bad in ("sk-plaintext", "{{secrets/a}}", "{{secrets/a/b/c}}", 5, None):
        with pytest.raises(InvalidArgument, match="f: expected a secret reference"):
            parse_reference(bad, "f")


def test_an_external_model_needs_read_on_its_key_and_never_shows_it(http):
    ann, bob = http("ann"), http("bob")
    ann.post(f"{S}/scopes/create", json={"scope": "llm"})
    ann.post(f"{S}/put", json={"scope": "llm", "key": "openai", "string_value": "sk-live-456"})

    def create(client, name: str, ref: str = "{{secrets/llm/openai}}"):
        return client.post("/api/2.0/serving-endpoints", json={"name": name, "config": {"served_entities": [
            {"name": "gpt", "external_model": {"name": "gpt-4o-mini", "provider": "openai", "task": "llm/v1/chat",
                                               "openai_config": {"openai_api_key": ref}}}]}})

    made = create(ann, "gpt-ep")
    assert made.status_code == 200, made.text
    assert "sk-live-456" not in made.text
    pending = made.json()["pending_config"]["served_entities"][0]["external_model"]
    assert pending["key"] == {"scope": "llm", "key": "openai"} and pending["provider"] == "openai"
    assert "sk-live-456" not in ann.get("/api/2.0/serving-endpoints/gpt-ep").text
    denied = create(bob, "bob-ep")
    assert denied.status_code == 403 and "READ on its key's secret scope" in denied.json()["message"]
    missing = create(ann, "ann-ep2", "{{secrets/llm/nope}}")
    assert missing.status_code == 400 and "secret 'nope' does not exist" in missing.json()["message"]
    plain = create(ann, "ann-ep3", "sk-live-456")
    assert plain.status_code == 400 and "sk-live-456" not in plain.text
    ann.post(f"{S}/acls/put", json={"scope": "llm", "principal": "bob", "permission": "READ"})
    assert create(bob, "bob-ep").status_code == 200
