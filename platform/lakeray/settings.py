"""Platform settings, read once from ``LAKERAY_*`` environment variables and passed down.

Nothing else in lakeray reads the environment for configuration: processes build a
:class:`Settings` at start (``Settings.from_env()``) and hand it to what they create.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from lakeray.errors import InvalidArgument

NAMESPACE = "lakeray"
REGISTRY_ACTOR = "registry"
TRACKER_ACTOR = "tracker"
SERVING_ACTOR = "serving"
GATEWAY_ACTOR = "gateway"
SERVE_APP = "lakeray"


#: who listens on the platform's port: the API replicas (default) or Ray Serve's proxy.
HTTP_FRONTS = ("replica", "proxy")

#: what an acknowledged write survives: a process kill (default) or also a power cut / OS crash.
DURABILITY_LEVELS = ("process", "power")


def _choice(env: dict, key: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(key) or choices[0]).strip().lower()
    if raw not in choices:
        raise InvalidArgument(f"{key} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _int(env: dict, key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{key} must be an integer, got {raw!r}") from None


def _float(env: dict, key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"{key} must be a number, got {raw!r}") from None
    if value < 0:
        raise InvalidArgument(f"{key} must not be negative, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where the platform keeps its data and how it listens.

    Args:
        home: root of the embedded default (``LAKERAY_HOME``, default ``~/.lakeray``).
        database_url: SQLAlchemy URL of the metadata DB (``LAKERAY_DATABASE_URL``);
            empty means SQLite at ``home/metadata.db``.
        host, port: where the HTTP API listens (``LAKERAY_HOST``/``LAKERAY_PORT``).
        http_front: who listens there (``LAKERAY_HTTP_FRONT``): ``replica`` (default), the API
            replicas themselves, sharing the port; or ``proxy``, Ray Serve's HTTP proxy.
        serve_proxy_port: with the replica front, a port for Ray Serve's own HTTP proxy
            (``LAKERAY_SERVE_PROXY_PORT``), for Serve apps deployed next to lakeray;
            0 (default) starts no proxy.
        max_body_bytes: request body cap, over which requests get 413.
        max_artifact_bytes: the cap for artifact and volume file uploads (bigger bodies).
        function_timeout_s: default wall-clock limit of a catalog function call.
        ray_address: Ray cluster to join (``RAY_ADDRESS``); empty starts or finds a local one.
        local_reads: API replicas serve read operations from the stores themselves instead of
            asking the registry actor (``LAKERAY_LOCAL_READS``, default on); needs ``home`` and
            the database reachable from every node that runs an API replica.
        default_model_schema: where a dot-free MLflow model name is registered
            (``LAKERAY_DEFAULT_MODEL_SCHEMA``, default ``main.default``).
        serving_replica_cpus: the CPUs Ray reserves for each model serving replica
            (``LAKERAY_SERVING_REPLICA_CPUS``, default 0.1: small models on small machines;
            give 1 or more on a cluster so replicas spread over nodes).
        durability: what an acknowledged write survives (``LAKERAY_DURABILITY``): ``process``
            (default), the death of any process, which is what actor kills and platform
            restarts are: SQLite commits without fsync (``synchronous=NORMAL``) and files are
            renamed into place without fsync; or ``power``, also a power cut or an OS crash:
            SQLite syncs each commit (``synchronous=FULL``) and every file and directory
            change is fsynced before the write is acknowledged (PostgreSQL syncs its commits
            either way).
    """

    home: str
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    http_front: str = "replica"
    serve_proxy_port: int = 0
    max_body_bytes: int = 16 * 1024 * 1024
    max_artifact_bytes: int = 1024 * 1024 * 1024
    function_timeout_s: int = 30
    ray_address: str = ""
    local_reads: bool = True
    default_model_schema: str = "main.default"
    serving_replica_cpus: float = 0.1
    durability: str = "process"

    @classmethod
    def from_env(cls, env: dict | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``)."""
        env = dict(os.environ if env is None else env)
        home = env.get("LAKERAY_HOME") or str(Path.home() / ".lakeray")
        return cls(
            home=str(Path(home).expanduser().resolve()),
            database_url=env.get("LAKERAY_DATABASE_URL", ""),
            host=env.get("LAKERAY_HOST", "127.0.0.1"),
            port=_int(env, "LAKERAY_PORT", 8000),
            http_front=_choice(env, "LAKERAY_HTTP_FRONT", HTTP_FRONTS),
            serve_proxy_port=_int(env, "LAKERAY_SERVE_PROXY_PORT", 0),
            max_body_bytes=_int(env, "LAKERAY_MAX_BODY_BYTES", 16 * 1024 * 1024),
            max_artifact_bytes=_int(env, "LAKERAY_MAX_ARTIFACT_BYTES", 1024 * 1024 * 1024),
            function_timeout_s=_int(env, "LAKERAY_FUNCTION_TIMEOUT_S", 30),
            ray_address=env.get("RAY_ADDRESS", ""),
            local_reads=env.get("LAKERAY_LOCAL_READS", "1").lower() not in ("0", "false", "no", "off"),
            default_model_schema=env.get("LAKERAY_DEFAULT_MODEL_SCHEMA", "main.default"),
            serving_replica_cpus=_float(env, "LAKERAY_SERVING_REPLICA_CPUS", 0.1),
            durability=_choice(env, "LAKERAY_DURABILITY", DURABILITY_LEVELS),
        )

    @property
    def sync_writes(self) -> bool:
        """Whether writes are fsynced (``durability="power"``)."""
        return self.durability == "power"

    @property
    def db_url(self) -> str:
        """The metadata DB URL, SQLite under ``home`` unless one was given."""
        return self.database_url or f"sqlite:///{Path(self.home) / 'metadata.db'}"

    @property
    def table_root(self) -> Path:
        return Path(self.home) / "tables"

    @property
    def volume_root(self) -> Path:
        return Path(self.home) / "volumes"

    @property
    def artifact_root(self) -> Path:
        return Path(self.home) / "artifacts"

    @property
    def credentials_path(self) -> Path:
        return Path(self.home) / "credentials"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_dict(self) -> dict:
        return asdict(self)

    def ensure_dirs(self) -> None:
        """Create the home folder and its data roots."""
        for path in (Path(self.home), self.table_root, self.volume_root, self.artifact_root):
            path.mkdir(parents=True, exist_ok=True)
