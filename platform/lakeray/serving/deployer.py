"""Makes what runs match what the endpoints ask for: one Ray Serve application per served
entity, rolled out beside the running ones and switched to only when ready.

Each pass (:meth:`Deployer.reconcile`, every second in the serving actor) reads every endpoint,
resolves each served entity's version (an alias is followed when it moves) and model kind, and
names its Serve application after a digest of that deployment spec, so an unchanged entity keeps
its application and a changed one gets a new application beside the old. When every application
of the wanted config runs, the endpoint's routes switch to them (``serving_state``) and the
applications no route uses are deleted; Serve lets their in-flight requests finish first. If
one fails to deploy, the update is UPDATE_FAILED with Serve's message, the running routes keep
answering and the failed application is removed. After a platform restart, applications that
are gone are deployed again from the same specs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

from lakeray.catalog import securables as rows
from lakeray.catalog.privileges import SecurableType as ST
from lakeray.errors import LakerayError
from lakeray.serving.service import SYSTEM, read_state, resolve_version, write_state

log = logging.getLogger("lakeray.serving")

APP_PREFIX = "lakeray-ep-"
#: Ray Serve's autoscaling target per replica, as Databricks' "concurrency" bands assume
TARGET_ONGOING_REQUESTS = 2
#: how long an app may take to come up before the update is declared failed
DEPLOY_TIMEOUT_S = 600


def deployment_spec(settings, model: str, view: dict, entity: dict) -> dict:
    """What a served entity's application is built from (its digest names the application)."""
    from lakeray.serving.replica import model_kind
    from lakeray.tracking.artifacts import ArtifactStore

    path = ArtifactStore(settings.artifact_root).location_path(view["storage_location"])
    return {"model": model, "version": int(view["version"]), "path": str(path), "kind": model_kind(path),
            "min_replicas": entity["min_replicas"], "max_replicas": entity["max_replicas"],
            "max_ongoing_requests": entity["max_ongoing_requests"],
            "max_queued_requests": entity["max_queued_requests"], "timeout_s": entity["timeout_s"],
            "environment_vars": entity["environment_vars"], "num_cpus": settings.serving_replica_cpus}


def external_spec(settings, entity: dict, key: str) -> dict:
    """What an external model's application is built from: the provider, never the key (only
    a digest of it, so a rotated key rolls the entity out again)."""
    from lakeray.serving.external import TASKS

    external = {k: v for k, v in entity["external_model"].items() if k != "key"}
    return {"external": external, "kind": TASKS[external["task"]],
            "key_digest": hashlib.sha256(key.encode()).hexdigest()[:16],
            "model": external["name"], "version": 0,
            "min_replicas": entity["min_replicas"], "max_replicas": entity["max_replicas"],
            "max_ongoing_requests": entity["max_ongoing_requests"],
            "max_queued_requests": entity["max_queued_requests"], "timeout_s": entity["timeout_s"],
            "environment_vars": entity["environment_vars"], "num_cpus": settings.serving_replica_cpus}


def app_name(endpoint: str, served: str, spec: dict) -> str:
    """``lakeray-ep-<endpoint>--<served entity>--<digest of the spec>``."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{APP_PREFIX}{endpoint}--{served}--{digest}"


def entity_app(spec: dict, served: str, key: str | None = None):
    """The Serve application of one served entity (``key``: an external model's API key, handed
    to its replicas as an argument, so it is in no config, name or log)."""
    from ray import serve

    from lakeray.serving.external import ExternalServer
    from lakeray.serving.llm import EmbeddingServer, LLMServer
    from lakeray.serving.replica import ModelServer

    if "external" in spec:
        server = ExternalServer
    else:
        server = {"pyfunc": ModelServer, "chat": LLMServer, "completion": LLMServer,
                  "embedding": EmbeddingServer}[spec["kind"]]
    deployment = serve.deployment(server).options(
        name=served,
        autoscaling_config={"min_replicas": spec["min_replicas"], "max_replicas": spec["max_replicas"],
                            "initial_replicas": max(spec["min_replicas"], 0),
                            "target_ongoing_requests": TARGET_ONGOING_REQUESTS,
                            "upscale_delay_s": 1.0, "downscale_delay_s": 60.0},
        max_ongoing_requests=spec["max_ongoing_requests"], max_queued_requests=spec["max_queued_requests"],
        ray_actor_options={"num_cpus": spec["num_cpus"],
                           "runtime_env": {"env_vars": spec["environment_vars"]} if spec["environment_vars"] else {}},
        graceful_shutdown_timeout_s=max(30.0, spec["timeout_s"]), health_check_period_s=5.0)
    return deployment.bind(spec, key) if "external" in spec else deployment.bind(spec)


class Deployer:
    """Reconciles endpoints (metadata DB) with Ray Serve applications."""

    def __init__(self, settings, registry):
        self.settings = settings
        self.registry = registry  # a lakeray.registry.Registry over the same stores
        self.db = registry.db
        self._started: dict[str, float] = {}  # app -> when this deployer asked Serve for it

    # -- Serve -----------------------------------------------------------------------------
    @staticmethod
    def _apps() -> dict[str, tuple[str, str]]:
        """Serve application -> (status, message), for lakeray's endpoint applications."""
        from ray import serve

        out = {}
        for name, app in serve.status().applications.items():
            if name.startswith(APP_PREFIX):
                status = app.status.value if hasattr(app.status, "value") else str(app.status)
                out[name] = (status, app.message or "")
        return out

    def _key(self, entity: dict) -> str:
        """An external model's API key, read from its secret as the platform."""
        ref = entity["external_model"]["key"]
        return self.registry.secrets.value(SYSTEM, ref["scope"], ref["key"])

    def _deploy(self, app: str, spec: dict, served: str, entity: dict) -> None:
        from ray import serve

        key = self._key(entity) if "external" in spec else None
        serve.run_many([serve.RunTarget(target=entity_app(spec, served, key), name=app, route_prefix=None)],
                       wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
        self._started[app] = time.monotonic()

    @staticmethod
    def _delete(apps: list[str]) -> None:
        from ray import serve

        for app in apps:
            try:
                serve.delete(app, _blocking=False)
            except Exception as e:  # noqa: BLE001 - retried on the next pass
                log.warning("could not delete Serve application %s: %s", app, e)

    # -- one pass --------------------------------------------------------------------------
    def reconcile(self) -> None:
        """One pass over every endpoint (errors of one endpoint do not stop the others); none
        while Serve is not running (asking it would start Serve with its default proxy)."""
        if not _serve_running():
            return
        apps = self._apps()
        with self.db.read() as conn:
            endpoints = [(obj, read_state(conn, obj.id)) for obj in rows.top_level(conn, ST.SERVING_ENDPOINT)]
        wanted_apps: set[str] = set()
        for obj, state in endpoints:
            try:
                wanted_apps |= self._reconcile_endpoint(obj, state, apps)
            except Exception:  # noqa: BLE001
                log.exception("reconciling endpoint %s failed", obj.name)
                wanted_apps |= {r["app"] for r in state["routes"]}
        orphans = [a for a in apps if a not in wanted_apps and apps[a][0] != "DELETING"]
        self._delete(orphans)

    def _targets(self, obj) -> tuple[list[dict], str | None]:
        """The served entities of the wanted config with their specs and applications, or an
        error message if one cannot be resolved (a deleted version, a moved alias to nothing)."""
        config = obj.spec["config"]
        percent = {r["served_model_name"]: r["traffic_percentage"] for r in config["traffic_config"]["routes"]}
        out = []
        for entity in config["served_entities"]:
            try:
                if "external_model" in entity:
                    spec = external_spec(self.settings, entity, self._key(entity))
                else:
                    view = resolve_version(self.registry.models, SYSTEM, entity["entity_name"],
                                           entity["entity_version"])
                    spec = deployment_spec(self.settings, entity["entity_name"], view, entity)
            except LakerayError as e:
                return [], f"served entity {entity['name']}: {e.message}"
            out.append({"served_name": entity["name"], "app": app_name(obj.name, entity["name"], spec),
                        "percent": percent.get(entity["name"], 0), "timeout_s": entity["timeout_s"],
                        "kind": spec["kind"], "version": spec["version"], "spec": spec, "entity": entity})
        return out, None

    def _reconcile_endpoint(self, obj, state: dict, apps: dict) -> set[str]:
        version = obj.spec["config_version"]
        targets, error = self._targets(obj)
        keep = {r["app"] for r in state["routes"]}
        new = dict(state)
        if error is not None:
            new.update(update="UPDATE_FAILED", failed_version=version, message=error)
            self._save(obj, state, new)
            return keep
        wanted = [t["app"] for t in targets]
        if state["failed_version"] == version and sorted(wanted) == sorted(state.get("failed_apps", [])):
            return keep  # this config already failed as it stands; a new config (or alias move) retries
        for t in targets:
            if t["app"] not in apps:
                self._deploy(t["app"], t["spec"], t["served_name"], t["entity"])
                apps[t["app"]] = ("DEPLOYING", "")
        statuses = {t["app"]: apps[t["app"]] for t in targets}
        entities = {t["served_name"]: _entity_state(*statuses[t["app"]]) for t in targets}
        failed = [(t, statuses[t["app"]][1]) for t in targets if statuses[t["app"]][0] == "DEPLOY_FAILED"
                  or (statuses[t["app"]][0] == "DEPLOYING"
                      and time.monotonic() - self._started.get(t["app"], time.monotonic()) > DEPLOY_TIMEOUT_S)]
        if failed:
            t, message = failed[0]
            new.update(update="UPDATE_FAILED", failed_version=version, failed_apps=wanted,
                       message=f"served entity {t['served_name']} failed to deploy: {message or 'timed out'}")
            new["entities"] = {**state["entities"], **{k: v for k, v in entities.items()
                                                        if k not in state["entities"] or not state["routes"]}}
            self._save(obj, state, new)
            return keep  # the failed applications are orphans now: deleted
        if all(statuses[a][0] == "RUNNING" for a in wanted):
            routes = [{k: t[k] for k in ("served_name", "app", "percent", "timeout_s", "kind", "version")}
                      for t in targets]
            new.update(config_version=version, config=obj.spec["config"], routes=routes, ready=True,
                       update="NOT_UPDATING", message="", entities=entities, failed_version=None, failed_apps=[])
            self._save(obj, state, new)
            return set(wanted)
        # still coming up: the running routes keep answering meanwhile
        new.update(update="IN_PROGRESS", entities={**entities, **({} if not state["routes"] else {
            k: v for k, v in state["entities"].items() if k not in entities})})
        if not state["routes"]:
            new.update(ready=False)
        self._save(obj, state, new)
        return keep | set(wanted)

    def _save(self, obj, old: dict, new: dict) -> None:
        if new != old:
            with self.db.write() as conn:
                if rows.find_by_id(conn, obj.id) is not None:  # not dropped meanwhile
                    write_state(conn, obj.id, new)


def _serve_running() -> bool:
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        return True
    except ValueError:
        return False


def _entity_state(status: str, message: str) -> dict:
    """A Serve application status as a Databricks served-entity deployment state."""
    deployment = {"RUNNING": "DEPLOYMENT_READY", "DEPLOY_FAILED": "DEPLOYMENT_FAILED",
                  "UNHEALTHY": "DEPLOYMENT_FAILED"}.get(status, "DEPLOYMENT_CREATING")
    return {"deployment": deployment, "message": message if deployment == "DEPLOYMENT_FAILED" else ""}
