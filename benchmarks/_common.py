"""What the benchmarks share: a percentile, free ports, and lakeray brought up in a temporary
LAKERAY_HOME on a private Ray head.

The benchmarks run as scripts (``python benchmarks/<name>.py``), so this module is imported as
``_common`` from the script's own folder.

Why a private Ray head: ``lakeray up`` joins whatever cluster ``ray.init(address="auto")`` finds,
and the platform's actors and Serve app have fixed names in that cluster. Joining a cluster that
another platform (a test session, ``make demo``) already runs would reuse that platform's actors
and replace its Serve app, and ``lakeray down`` would then remove them. So each benchmark starts
its own head (``ray start --head --block`` with its own ports and ``--temp-dir``, which keeps it
out of ``/tmp/ray/ray_current_cluster``), points ``lakeray`` at it with ``RAY_ADDRESS``, and
ends it by signalling only the processes it started. (A ``ray stop`` run anywhere on the machine,
e.g. by a ``lakeray down`` that started its own head, still stops every Ray process, this one
too: run benchmarks while nothing else starts and stops Ray.)
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
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Ray 2.60 turns token authentication on only for clusters found with ``address="auto"``;
#: a private head is joined by explicit address, so say it on both sides (the token is
#: Ray's usual ``~/.ray/auth_token``).
RAY_ENV = {"RAY_AUTH_MODE": "token"}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by rank (no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM the session ``proc`` leads (started with ``start_new_session=True``), then SIGKILL
    whatever of that group is left after ``grace_s``. Touches no other process."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@dataclass
class RayHead:
    """A Ray cluster to run lakeray on: its address and, for a private head, the process."""

    address: str
    proc: subprocess.Popen | None = None

    def alive(self) -> bool:
        """False once a private head has exited (``ray stop`` anywhere on the machine kills it)."""
        return self.proc is None or self.proc.poll() is None


@contextlib.contextmanager
def private_ray_head(num_cpus: int | None = None, wait_s: float = 120.0) -> Iterator[RayHead]:
    """A Ray head of this benchmark's own, stopped (only it) on exit."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    temp_dir = Path(tempfile.mkdtemp(prefix="lrb-ray-", dir="/tmp"))  # short: Ray's socket paths
    cmd = [ray_bin, "start", "--head", "--block", "--disable-usage-stats", "--include-dashboard=false",
           f"--temp-dir={temp_dir}", f"--port={free_port()}",
           f"--ray-client-server-port={free_port()}", f"--dashboard-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
           f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
           "--min-worker-port=0", "--max-worker-port=0", "--object-store-memory=300000000"]
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").exists()):
        subprocess.run([ray_bin, "get-auth-token", "--generate"], check=True, stdout=subprocess.DEVNULL)
    log = open(temp_dir / "ray-start.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **RAY_ENV})
    address_file = temp_dir / "ray_current_cluster"
    try:
        deadline = time.monotonic() + wait_s
        while not (address_file.exists() and address_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`ray start --head` failed; see {temp_dir / 'ray-start.log'}")
            time.sleep(0.25)
        yield RayHead(address_file.read_text().strip(), proc)
    finally:
        stop_process_group(proc)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@dataclass
class Lakeray:
    """A running lakeray: its URL, admin token, LAKERAY_HOME and the env its CLI ran with."""

    url: str
    token: str
    home: Path
    env: dict
    ray: RayHead


@contextlib.contextmanager
def running_lakeray(port: int | None = None, ray_address: str | None = None,
                    keep_home: bool = False, extra_env: dict | None = None) -> Iterator[Lakeray]:
    """``lakeray up`` in a temporary LAKERAY_HOME on a private Ray head (or on ``ray_address``),
    with ``extra_env`` (``LAKERAY_*`` settings) on top, then ``lakeray down``; yields a
    :class:`Lakeray`."""
    with contextlib.ExitStack() as stack:
        if ray_address:
            head = RayHead(ray_address)
        else:
            print("starting a private Ray head ...", flush=True)
            head = stack.enter_context(private_ray_head())
        port = port or free_port()
        home = Path(tempfile.mkdtemp(prefix="lakeray-bench-"))
        env = {**os.environ, "LAKERAY_HOME": str(home), "LAKERAY_PORT": str(port), "RAY_ADDRESS": head.address,
               **RAY_ENV, **(extra_env or {})}
        env.pop("LAKERAY_TOKEN", None)
        cli = [sys.executable, "-m", "lakeray.cli"]
        print(f"starting lakeray in {home} on http://127.0.0.1:{port} (Ray at {head.address}) ...", flush=True)
        try:
            subprocess.run([*cli, "up"], env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL, timeout=600)
            token = json.loads((home / "credentials").read_text())["token"]
            yield Lakeray(f"http://127.0.0.1:{port}", token, home, env, head)
        finally:
            if head.alive():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    subprocess.run([*cli, "down"], env=env, cwd=REPO, check=False, stdout=subprocess.DEVNULL,
                                   timeout=300)
            else:
                print("the private Ray head is gone (a `ray stop` elsewhere on this machine stops every "
                      "Ray process); nothing to take down", file=sys.stderr, flush=True)
            if not keep_home:
                shutil.rmtree(home, ignore_errors=True)
