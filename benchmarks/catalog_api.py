"""python benchmarks/catalog_api.py [--rounds 5] [--requests 200] [--seconds 3] [--concurrency 8]

Catalog API latency and throughput against a bare Ray Serve echo deployment, in one run.

lakeray is brought up in a temporary LAKERAY_HOME on a private Ray head (see ``_common.py``),
and a bare Serve echo app is deployed next to it behind Ray Serve's HTTP proxy (lakeray's API
replicas serve their own port; ``LAKERAY_SERVE_PROXY_PORT`` starts the proxy beside them). Rounds are
interleaved (echo, get table, permission check, echo, ...) so both see the same machine state.
Printed: p50/p99 at concurrency 1, QPS at ``--concurrency``, and each ratio to the echo.
Target (the Foundation issue): get-table p50 <= 2x the bare echo.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import requests
from _common import RAY_ENV, free_port, percentile, running_lakeray

TABLE = "main.default.bench_table"
USER = "bench_reader"


def sequential(session: requests.Session, url: str, n: int) -> list[float]:
    """Latencies (ms) of n back-to-back GETs."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        resp = session.get(url, timeout=30)
        out.append((time.perf_counter() - start) * 1000)
        if resp.status_code != 200:
            raise RuntimeError(f"{url} answered {resp.status_code}: {resp.text[:200]}")
    return out


def throughput(headers: dict, url: str, seconds: float, concurrency: int) -> float:
    """Requests per second with ``concurrency`` threads hammering ``url``."""
    done = [0] * concurrency
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        s = requests.Session()
        s.headers.update(headers)
        while time.perf_counter() < stop:
            if s.get(url, timeout=30).status_code == 200:
                done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - start)


def deploy_echo() -> None:
    """A bare Serve deployment behind Serve's proxy, at /bench-echo."""
    from ray import serve
    from starlette.requests import Request

    @serve.deployment(name="echo", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
    class Echo:
        async def __call__(self, request: Request) -> dict:
            return {"path": request.url.path}

    serve.run(Echo.bind(), name="bench_echo", route_prefix="/bench-echo", blocking=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=200, help="sequential requests per target per round")
    p.add_argument("--seconds", type=float, default=3.0, help="throughput window per target per round")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--port", type=int, default=int(os.environ["LAKERAY_PORT"]) if os.environ.get("LAKERAY_PORT")
                   else None, help="lakeray's HTTP port (default: a free one)")
    p.add_argument("--ray-address", default=None, help="run on this Ray cluster instead of a private head")
    args = p.parse_args()

    proxy_port = free_port()
    with running_lakeray(port=args.port, ray_address=args.ray_address,
                         extra_env={"LAKERAY_SERVE_PROXY_PORT": str(proxy_port)}) as lake:
        os.environ.update(RAY_ENV)
        import ray

        import lakeray
        from lakeray.settings import Settings

        ray.init(address=lake.ray.address, namespace="lakeray", log_to_driver=False, logging_level="ERROR")
        try:
            admin = lakeray.connect(lake.url, token=lake.token, settings=Settings.from_env(lake.env))
            run(args, lake, f"http://127.0.0.1:{proxy_port}", admin)
        finally:
            try:
                from ray import serve

                serve.delete("bench_echo")
            except Exception:  # noqa: BLE001 - best effort
                pass
            ray.shutdown()


def run(args, lake, proxy_url: str, admin) -> None:
    """Set up the table and the reader, then the interleaved rounds and the report."""
    deploy_echo()
    base, admin_token = lake.url, lake.token
    admin.create_table(TABLE, data=[{"id": i, "name": f"row{i}"} for i in range(100)])
    admin.create_principal(USER)
    admin.grant("catalog", "main", USER, "USE CATALOG")
    admin.grant("schema", "main.default", USER, "USE SCHEMA")
    admin.grant("table", TABLE, USER, "SELECT")
    user_token = admin.create_token(principal=USER)["token_value"]

    targets = {
        "bare echo": (proxy_url + "/bench-echo", {}),
        "get table": (f"{base}/api/2.1/unity-catalog/tables/{TABLE}",
                      {"Authorization": f"Bearer {admin_token}"}),
        "permission check": (f"{base}/api/2.1/unity-catalog/effective-permissions/table/{TABLE}",
                             {"Authorization": f"Bearer {user_token}"}),
    }
    lat: dict[str, list[float]] = {k: [] for k in targets}
    qps: dict[str, list[float]] = {k: [] for k in targets}
    sessions = {}
    for name, (url, headers) in targets.items():
        s = requests.Session()
        s.headers.update(headers)
        sequential(s, url, 20)  # warm up connections, caches and the replica
        sessions[name] = s
    for r in range(args.rounds):
        for name, (url, headers) in targets.items():
            lat[name] += sequential(sessions[name], url, args.requests)
            qps[name].append(throughput(headers, url, args.seconds, args.concurrency))
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    echo_p50 = statistics.median(lat["bare echo"])
    echo_qps = statistics.median(qps["bare echo"])
    print()
    print(f"{'target':<18}{'p50 ms':>9}{'p99 ms':>9}{'QPS@' + str(args.concurrency):>9}"
          f"{'p50/echo':>10}{'QPS/echo':>10}")
    for name in targets:
        p50, p99 = statistics.median(lat[name]), percentile(lat[name], 0.99)
        q = statistics.median(qps[name])
        print(f"{name:<18}{p50:>9.2f}{p99:>9.2f}{q:>9.0f}{p50 / echo_p50:>10.2f}{q / echo_qps:>10.2f}")
    ratio = statistics.median(lat["get table"]) / echo_p50
    print()
    print(f"get table p50 / bare echo p50 = {ratio:.2f}  (target <= 2.0: {'met' if ratio <= 2.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
