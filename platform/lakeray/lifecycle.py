"""Bring the platform up, report on it, and take it down (data always stays).

``up`` starts a local Ray head (or joins ``RAY_ADDRESS``), creates the registry actor,
deploys the Serve HTTP app on ``settings.host:settings.port``, and on first start writes the
admin token to ``LAKERAY_HOME/credentials`` (mode 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from lakeray import __version__
from lakeray.client.credentials import read_credentials, write_credentials
from lakeray.errors import Unavailable
from lakeray.settings import (
    GATEWAY_ACTOR,
    NAMESPACE,
    REGISTRY_ACTOR,
    SERVE_APP,
    SERVING_ACTOR,
    TRACKER_ACTOR,
    Settings,
)

ADMIN = "admin"
STARTED_MARKER = "ray_started_by_lakeray"


def _ray_bin() -> str:
    return shutil.which("ray") or str(Path(sys.executable).parent / "ray")


def _local_cluster_alive() -> bool:
    """Whether the cluster recorded in Ray's ``ray_current_cluster`` file still answers.

    ``ray.init(address="auto")`` against a stale record (a head that was just stopped or
    killed) waits 60 s and then aborts the whole process, so look first.
    """
    from ray._private.utils import read_ray_address  # the file `ray start` writes

    address = read_ray_address()
    if not address:
        return False
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def ray_auth_env() -> dict[str, str]:
    """The environment of a `ray start` head with Ray's token authentication on.

    Ray's GCS, raylet, Ray Client server and dashboard agent listen on every interface
    whatever ``--node-ip-address`` says, and without a token anyone who reaches them runs code
    as this user (Ray's CVE-2023-48022, "token auth off by default"). `ray start` turns token
    auth on only when a token already exists, so make Ray's usual one (``~/.ray/auth_token``)
    when there is none; local drivers (``ray.init(address="auto")``) find it there. A
    ``RAY_AUTH_MODE`` the operator set is kept as it is.
    """
    env = dict(os.environ)
    if env.get("RAY_AUTH_MODE"):
        return env
    if not (env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").exists()):
        subprocess.run([_ray_bin(), "get-auth-token", "--generate"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    env["RAY_AUTH_MODE"] = "token"
    return env


def connect_ray(settings: Settings, start: bool) -> bool:
    """``ray.init`` against the configured or local cluster; with ``start`` a head is started
    when none runs. Returns whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = dict(namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR")
    if settings.ray_address:
        ray.init(address=settings.ray_address, **kwargs)
        return False
    if _local_cluster_alive():
        try:
            ray.init(address="auto", **kwargs)
            return False
        except (ConnectionError, RuntimeError, ValueError):
            pass
    if not start:
        raise Unavailable("no Ray cluster is running: run `lakeray up`")
    # A `ray start` head outlives this process, so the platform keeps running after `up`.
    # The dashboard carries the Jobs API (`ray job submit`); bind it to loopback only.
    # Its own session, so every process of this cluster (GCS, raylet, dashboard, workers) shares
    # one process group, which `down` stops without touching other Ray clusters on the machine.
    cmd = [_ray_bin(), "start", "--head", "--disable-usage-stats", "--dashboard-host=127.0.0.1"]
    env = ray_auth_env()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                   env=env)
    ray.init(address="auto", **kwargs)
    group = _cluster_group()
    (Path(settings.home) / STARTED_MARKER).write_text(json.dumps({"started_at": time.time(), "pgid": group}))
    return True


def _groups() -> dict[int, set[str]]:
    """Process group id -> the command names in it (``ps`` works on Linux and macOS)."""
    out = subprocess.run(["ps", "-eo", "pgid=,comm="], capture_output=True, text=True, check=False).stdout
    groups: dict[int, set[str]] = {}
    for line in out.splitlines():
        pgid, _, comm = line.strip().partition(" ")
        if pgid.isdigit():
            groups.setdefault(int(pgid), set()).add(comm.strip().rsplit("/", 1)[-1])
    return groups


def _cluster_group() -> int | None:
    """The process group of the GCS server of the cluster this driver is connected to."""
    import ray

    port = ray.get_runtime_context().gcs_address.rpartition(":")[2]
    out = subprocess.run(["ps", "-eo", "pgid=,args="], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        pgid, _, args = line.strip().partition(" ")
        if "gcs_server" in args and f"--gcs_server_port={port}" in args and pgid.isdigit():
            return int(pgid)
    return None


def stop_cluster(pgid: int | None, grace_s: float = 15.0) -> bool:
    """Stop the Ray cluster ``up`` started (its process group): SIGTERM, then SIGKILL.

    Only a group that still holds a Ray GCS server or raylet is signalled (a recycled group id
    is left alone). Returns whether a cluster was stopped.
    """
    if not pgid or not ({"gcs_server", "raylet"} & _groups().get(pgid, set())):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace_s
        while pgid in _groups() and time.monotonic() < deadline:
            time.sleep(0.2)
        if pgid not in _groups():
            break
    return True


def deploy(settings: Settings, wait_s: float = 120.0) -> str | None:
    """Create the registry actor and the Serve app (in a connected Ray); returns a new admin
    token if the credentials file had to be written, else None."""
    import ray
    from ray import serve

    from lakeray.actors.base import start_all
    from lakeray.api.ingress import ingress_app

    settings.ensure_dirs()
    if settings.http_front == "replica":
        from lakeray.api.front import check_port_free

        # A clear error before anything is created, not a replica that cannot start; a running
        # lakeray's own replicas share the port, so a repeated `up` passes.
        check_port_free(settings.host, settings.port)
    actors = start_all(settings, admin=ADMIN)
    ray.get([a.ping.remote() for a in actors.values()], timeout=wait_s)
    actor = actors[REGISTRY_ACTOR]
    new_token = None
    if read_credentials(settings.credentials_path) is None:
        new_token = ray.get(actor.issue_admin_token.remote())
        write_credentials(settings.credentials_path, new_token, settings.url, ADMIN)
    start_serve(settings)
    serve.run(ingress_app(settings), name=SERVE_APP, route_prefix="/", blocking=False)
    from lakeray.actors import serving

    # after Serve: it deploys the endpoints' applications (again, after a restart)
    ray.get(serving.handle(settings, create=True).ping.remote(), timeout=wait_s)
    wait_healthy(settings.url, wait_s)
    return new_token


def start_serve(settings: Settings) -> None:
    """Start Ray Serve (a no-op if it runs): its HTTP proxy on the platform's port with the
    ``proxy`` front; with the ``replica`` front (the replicas listen themselves), the proxy runs
    only on ``serve_proxy_port``, if one is set."""
    from ray import serve

    if settings.http_front == "proxy":
        serve.start(http_options={"host": settings.host, "port": settings.port})
        return
    if settings.serve_proxy_port:
        serve.start(http_options={"host": settings.host, "port": settings.serve_proxy_port})
    else:
        serve.start(proxy_location="Disabled")


def wait_healthy(url: str, wait_s: float = 120.0) -> None:
    """Poll ``/healthz`` until it answers 200."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise Unavailable(f"the API at {url} did not become healthy within {wait_s:.0f}s")
        time.sleep(0.25)


def up(settings: Settings) -> dict:
    """Start (or join) Ray and deploy the platform; idempotent."""
    settings.ensure_dirs()
    started = connect_ray(settings, start=True)
    token = deploy(settings)
    return {"url": settings.url, "home": settings.home, "credentials": str(settings.credentials_path),
            "started_ray": started, "new_admin_token": token is not None}


def down(settings: Settings, stop_ray: bool | None = None) -> dict:
    """Remove the Serve app and the registry actor; stop Ray if ``up`` started it. Data stays."""
    import ray
    from ray import serve

    try:
        connect_ray(settings, start=False)
    except Unavailable:
        return {"stopped": False, "reason": "no Ray cluster is running"}
    # the serving actor first: it would deploy the endpoints' applications again
    try:
        ray.kill(ray.get_actor(SERVING_ACTOR, namespace=NAMESPACE), no_restart=True)
    except ValueError:
        pass
    try:
        serve.delete(SERVE_APP)
    except Exception:  # noqa: BLE001 - nothing deployed is fine
        pass
    try:
        serve.shutdown()
    except Exception:  # noqa: BLE001
        pass
    try:  # the query logs the gateway still holds
        ray.get(ray.get_actor(GATEWAY_ACTOR, namespace=NAMESPACE).flush.remote(), timeout=30)
    except Exception:  # noqa: BLE001 - no gateway, or it is gone: nothing to keep
        pass
    for name in (REGISTRY_ACTOR, TRACKER_ACTOR, GATEWAY_ACTOR):
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        except ValueError:
            pass
    marker = Path(settings.home) / STARTED_MARKER
    ray.shutdown()
    if stop_ray is None:
        stop_ray = marker.exists()
    if stop_ray:
        try:
            pgid = json.loads(marker.read_text()).get("pgid")
        except (OSError, ValueError, AttributeError):
            pgid = None
        # Never `ray stop`: it stops every Ray cluster on the machine, not just this one.
        stop_cluster(pgid)
        marker.unlink(missing_ok=True)
    return {"stopped": True, "stopped_ray": bool(stop_ray), "home": settings.home}


def status(settings: Settings) -> dict:
    """Actors, Serve apps, URL, data dir and versions."""
    import ray

    out: dict = {"url": settings.url, "home": settings.home, "database": settings.db_url.split("://")[0],
                 "credentials": str(settings.credentials_path), "versions": {
                     "lakeray": __version__, "ray": ray.__version__, "python": sys.version.split()[0]}}
    try:
        connect_ray(settings, start=False)
    except Unavailable as e:
        out.update(ray="not running", detail=e.message)
        return out
    from ray import serve
    from ray.util.state import list_actors

    out["ray"] = ray.get_runtime_context().gcs_address
    actors = list_actors(filters=[("ray_namespace", "=", NAMESPACE)], detail=False)
    out["actors"] = [{"name": a.name, "state": a.state, "class": a.class_name} for a in actors if a.name]
    try:
        apps = serve.status().applications
        out["serve"] = {name: str(app.status.value if hasattr(app.status, "value") else app.status)
                        for name, app in apps.items()}
    except Exception as e:  # noqa: BLE001 - Serve not started
        out["serve"] = {"error": type(e).__name__}
    try:
        out["healthy"] = requests.get(settings.url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        out["healthy"] = False
    return out

