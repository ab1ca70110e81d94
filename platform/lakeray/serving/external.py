"""External models: a served entity that forwards to a provider's API (OpenAI, Anthropic, or any
OpenAI-compatible base URL) instead of running a model, so the gateway's limits, guardrails,
usage and inference tables, fallbacks and permissions apply to it like to any endpoint.

Config (Databricks' shape) of a served entity::

    {"name": "gpt", "external_model": {
        "name": "gpt-4o-mini", "provider": "openai", "task": "llm/v1/chat",
        "openai_config": {"openai_api_key": "{{secrets/llm/openai}}", "openai_api_base": "https://..."}}}

Providers: ``openai`` (``openai_config``: key, optional ``openai_api_base`` for any OpenAI-
compatible server, ``openai_organization``), ``anthropic`` (``anthropic_config``: key, optional
``anthropic_api_base``), ``custom`` (``custom_provider_config``: ``custom_provider_url`` of an
OpenAI-compatible server, ``bearer_token_auth.token``). Keys are only ever secret references
(``{{secrets/<scope>/<key>}}``, see :mod:`lakeray.secrets`): the endpoint's writer needs READ on
the secret, the key is read by the deployer and handed to the replica, and no response, error,
log line or config shows it. Queries may not carry their own base URL or key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlparse

from lakeray.errors import (
    DeadlineExceeded,
    InvalidArgument,
    ModelError,
    ResourceExhausted,
    Unavailable,
)
from lakeray.secrets.service import parse_reference
from lakeray.serving import openai_api as oa

log = logging.getLogger("lakeray.serving")

TASKS = {"llm/v1/chat": "chat", "llm/v1/completions": "completion", "llm/v1/embeddings": "embedding"}
PROVIDERS = ("openai", "anthropic", "custom")
DEFAULT_BASE = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
ANTHROPIC_VERSION = "2023-06-01"
#: Anthropic requires max_tokens; a request without one gets this
ANTHROPIC_DEFAULT_MAX_TOKENS = 1024
#: body fields a client could use to redirect the call or swap the key: always refused
OVERRIDES = ("api_base", "base_url", "api_key", "api_version", "api_type", "organization", "openai_api_key",
             "openai_api_base", "anthropic_api_key", "anthropic_api_base", "headers", "extra_headers")
_CONFIG_KEYS = {"openai": "openai_config", "anthropic": "anthropic_config", "custom": "custom_provider_config"}


def _base(value: object, where: str) -> str:
    if not isinstance(value, str) or urlparse(value).scheme not in ("http", "https") or not urlparse(value).netloc:
        raise InvalidArgument(f"{where}: expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


def normalise_external(raw: object, where: str) -> dict:
    """The checked external model of a served entity: ``{"name", "provider", "task", "api_base",
    "key": {"scope", "key"}, "organization"}``; InvalidArgument naming the field otherwise."""
    where = f"{where}.external_model"
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: expected an object")
    unknown = sorted(set(raw) - {"name", "provider", "task", *_CONFIG_KEYS.values()})
    if unknown:
        raise InvalidArgument(f"{where}.{unknown[0]}: unknown field (providers: {', '.join(PROVIDERS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidArgument(f"{where}.name: expected the provider's model name")
    provider = raw.get("provider")
    if provider not in PROVIDERS:
        raise InvalidArgument(f"{where}.provider: expected one of {', '.join(PROVIDERS)}, got {provider!r}")
    task = raw.get("task")
    if task not in TASKS:
        raise InvalidArgument(f"{where}.task: expected one of {', '.join(TASKS)}, got {task!r}")
    if provider == "anthropic" and task == "llm/v1/embeddings":
        raise InvalidArgument(f"{where}.task: anthropic has no embeddings API")
    field = _CONFIG_KEYS[provider]
    for other in set(_CONFIG_KEYS.values()) - {field}:
        if raw.get(other) is not None:
            raise InvalidArgument(f"{where}.{other}: does not apply to provider {provider}")
    config = raw.get(field)
    if not isinstance(config, dict):
        raise InvalidArgument(f"{where}.{field}: required for provider {provider}")
    at = f"{where}.{field}"
    for plain in ("openai_api_key_plaintext", "anthropic_api_key_plaintext"):
        if plain in config:
            raise InvalidArgument(f"{at}.{plain}: plaintext keys are refused; put the key in a secret scope "
                                  "and refer to it as {{secrets/<scope>/<key>}}")
    out = {"name": name.strip(), "provider": provider, "task": task, "organization": None}
    if provider == "openai":
        allowed = {"openai_api_key", "openai_api_base", "openai_organization", "openai_api_type"}
        key_field, base = "openai_api_key", config.get("openai_api_base")
        if config.get("openai_api_type") not in (None, "openai"):
            raise InvalidArgument(f"{at}.openai_api_type: only \"openai\" (OpenAI-compatible APIs) is supported")
        organization = config.get("openai_organization")
        if organization is not None and not isinstance(organization, str):
            raise InvalidArgument(f"{at}.openai_organization: expected a string")
        out["organization"] = organization
    elif provider == "anthropic":
        allowed = {"anthropic_api_key", "anthropic_api_base"}
        key_field, base = "anthropic_api_key", config.get("anthropic_api_base")
    else:
        allowed = {"custom_provider_url", "bearer_token_auth"}
        auth = config.get("bearer_token_auth")
        if not isinstance(auth, dict) or set(auth) != {"token"}:
            raise InvalidArgument(f"{at}.bearer_token_auth: expected {{\"token\": \"{{{{secrets/<scope>/<key>}}}}\"}}")
        config = {**config, "token": auth["token"]}
        allowed |= {"token"}
        key_field, base = "token", config.get("custom_provider_url")
        if base is None:
            raise InvalidArgument(f"{at}.custom_provider_url: required (an OpenAI-compatible base URL)")
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise InvalidArgument(f"{at}.{unknown[0]}: unknown field")
    scope, key = parse_reference(config.get(key_field), f"{at}.{key_field}")
    out["key"] = {"scope": scope, "key": key}
    base_field = {"openai": "openai_api_base", "anthropic": "anthropic_api_base", "custom": "custom_provider_url"}
    out["api_base"] = _base(base, f"{at}.{base_field[provider]}") if base is not None else DEFAULT_BASE[provider]
    return out


# -- the replica ------------------------------------------------------------------------------

def _refuse_overrides(body: dict) -> None:
    found = [k for k in OVERRIDES if k in body]
    if found:
        raise InvalidArgument(f"{found[0]}: a query may not choose the provider's URL or key; they are the "
                              "endpoint's")


def _provider_error(provider: str, status: int, text: str, headers) -> Exception:
    """A provider's HTTP error as the error this endpoint answers with (the key never appears:
    only the provider's own message is passed on)."""
    try:
        detail = json.loads(text).get("error")
        message = detail.get("message") if isinstance(detail, dict) else str(detail or text)
    except (ValueError, AttributeError):
        message = text
    message = (message or "").strip()[:500]
    if status == 429:
        error = ResourceExhausted(f"{provider} rate-limited the call: {message}")
        retry = headers.get("retry-after")
        error.retry_after_s = float(retry) if retry and retry.replace(".", "", 1).isdigit() else 1
        return error
    if status in (401, 403):
        return ModelError(f"{provider} refused the endpoint's credentials ({status}); its owner must fix the key")
    if status >= 500:
        return Unavailable(f"{provider} failed ({status}): {message}")
    return InvalidArgument(f"{provider} refused the request ({status}): {message}")


class ExternalServer:
    """One replica of an external model (see :func:`lakeray.serving.deployer.entity_app`)."""

    def __init__(self, spec: dict, api_key: str):
        import httpx

        self.spec, self.kind = spec, spec["kind"]
        self.external = spec["external"]
        self.provider = self.external["provider"]
        headers = {"content-type": "application/json"}
        if self.provider == "anthropic":
            headers.update({"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION})
        else:
            headers["authorization"] = f"Bearer {api_key}"
            if self.external.get("organization"):
                headers["openai-organization"] = self.external["organization"]
        # the key lives only in this client's default headers, never in a message or log
        self.client = httpx.AsyncClient(base_url=self.external["api_base"], headers=headers,
                                        timeout=httpx.Timeout(spec["timeout_s"], connect=10.0))

    def _path_and_body(self, request: dict) -> tuple[str, dict]:
        body = request.get("body")
        if not isinstance(body, dict):
            raise InvalidArgument("expected a JSON object body")
        _refuse_overrides(body)
        api = request["api"]
        wanted = {"chat": "chat", "completion": "completion", "embeddings": "embedding"}.get(api)
        if wanted != self.kind:
            raise InvalidArgument(f"endpoint '{request['model']}' serves an external {self.kind} model "
                                  f"({self.external['task']}); this is a {api} request")
        if self.provider == "anthropic":
            return "/v1/messages", to_anthropic(body, self.external["name"], api)
        path = {"chat": "/chat/completions", "completion": "/completions", "embeddings": "/embeddings"}[api]
        return path, {**body, "model": self.external["name"]}

    async def _post(self, path: str, body: dict, stream: bool = False):
        import httpx

        try:
            if stream:
                response = await self.client.send(self.client.build_request("POST", path, json=body), stream=True)
            else:
                response = await self.client.post(path, json=body)
        except httpx.TimeoutException:
            raise DeadlineExceeded(f"{self.provider} did not answer within {self.spec['timeout_s']:g} s") from None
        except httpx.HTTPError as e:
            raise Unavailable(f"{self.provider} is not reachable: {type(e).__name__}") from None
        if response.status_code >= 400:
            text = (await response.aread()).decode("utf-8", "replace") if stream else response.text
            if stream:
                await response.aclose()
            raise _provider_error(self.provider, response.status_code, text, response.headers)
        return response

    async def __call__(self, request: dict) -> dict:
        path, body = self._path_and_body(request)
        body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        response = await self._post(path, body)
        out = response.json()
        if self.provider == "anthropic":
            return from_anthropic(out, request["model"], request["api"])
        return out

    async def stream(self, request: dict) -> AsyncIterator[str]:
        """Server-sent events: the provider's own for OpenAI-compatible ones, translated for
        Anthropic."""
        path, body = self._path_and_body(request)
        response = await self._post(path, {**body, "stream": True}, stream=True)
        try:
            if self.provider == "anthropic":
                wants_usage = bool((request["body"].get("stream_options") or {}).get("include_usage"))
                async for event in anthropic_events(response.aiter_lines(), request["model"], request["api"],
                                                    wants_usage):
                    yield event
            else:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        yield line + "\n\n"
        finally:
            await response.aclose()

    def check_health(self) -> None:
        """Serve's health check: the client is open (the provider is checked by real calls)."""
        if self.client.is_closed:
            raise RuntimeError("the provider client is closed")


# -- Anthropic's Messages API in OpenAI's shapes --------------------------------------------

def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise InvalidArgument("messages[].content: expected a string or a list of text parts")


def to_anthropic(body: dict, model: str, api: str) -> dict:
    """An OpenAI chat or completion body as an Anthropic Messages request."""
    if api == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidArgument("messages: expected a non-empty list")
        system = "\n".join(_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "system")
        turns = [{"role": m.get("role"), "content": _text(m.get("content"))}
                 for m in messages if isinstance(m, dict) and m.get("role") != "system"]
        if any(t["role"] not in ("user", "assistant") for t in turns):
            raise InvalidArgument("messages[].role: expected system, user or assistant")
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidArgument("prompt: expected a string")
        system, turns = "", [{"role": "user", "content": prompt}]
    out = {"model": model, "messages": turns, "max_tokens": body.get("max_tokens") or ANTHROPIC_DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = system
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p")):
        if body.get(ours) is not None:
            out[theirs] = body[ours]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return out


_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def from_anthropic(message: dict, model: str, api: str) -> dict:
    """An Anthropic Messages response as an OpenAI ``chat.completion`` or ``text_completion``."""
    text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
    use = message.get("usage") or {}
    return oa.completion_object(api, message.get("id") or oa.completion_id(api), model, text,
                                _FINISH.get(message.get("stop_reason"), "stop"),
                                oa.usage(int(use.get("input_tokens") or 0), int(use.get("output_tokens") or 0)))


async def anthropic_events(lines, model: str, api: str, include_usage: bool) -> AsyncIterator[str]:
    """Anthropic's stream events as OpenAI chunks (``data: {...}`` and a final ``[DONE]``)."""
    rid, created, prompt_tokens, completion_tokens = oa.completion_id(api), int(time.time()), 0, 0

    def chunk(text: str | None, reason: str | None, first: bool = False, usage: dict | None = None) -> str:
        return oa.chunk_event(api, rid, model, text, reason, first, usage, include_usage, created)

    async for line in lines:
        if not line.startswith("data:"):
            continue
        event = json.loads(line[5:])
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            rid = message.get("id") or rid
            prompt_tokens = int((message.get("usage") or {}).get("input_tokens") or 0)
            if api == "chat":
                yield chunk(None, None, first=True)
        elif kind == "content_block_delta" and (event.get("delta") or {}).get("type") == "text_delta":
            yield chunk(event["delta"].get("text", ""), None)
        elif kind == "message_delta":
            completion_tokens = int((event.get("usage") or {}).get("output_tokens") or completion_tokens)
            yield chunk(None, _FINISH.get((event.get("delta") or {}).get("stop_reason"), "stop"))
        elif kind == "error":
            detail = event.get("error") or {}
            raise Unavailable(f"anthropic failed mid-stream: {detail.get('message', 'unknown error')}")
    if include_usage:
        yield chunk(None, None, usage=oa.usage(prompt_tokens, completion_tokens))
    yield "data: [DONE]\n\n"
