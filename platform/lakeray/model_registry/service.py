"""The model registry service: registered models as catalog securables, and their versions.

Rules (Unity Catalog's, see ARCHITECTURE.md):
- creating a registered model needs CREATE MODEL on its schema (plus USE CATALOG/USE SCHEMA);
  a dot-free MLflow name lands in the configured default schema (``main.default``);
- reading a model, its versions and aliases, and loading its artifacts need EXECUTE (owners and
  ALL PRIVILEGES holders have it);
- creating versions, changing descriptions and tags, setting, moving and deleting aliases and
  deleting versions or the model need ownership or MANAGE.

Creating a version copies the source's artifacts into the version's own directory under the
model's managed storage (``<artifact root>/models/<model id>/versions/<n>``) inside the write
transaction, so a version is READY when it is acknowledged and later changes to the run's
artifacts do not change it. The lineage edge run -> model version is recorded in the same
transaction. A source may be another version (``models:/<name>/<n>``, what MLflow's
``copy_model_version`` sends, e.g. to promote ``dev.ml.churn`` 3 to ``prod.ml.churn``): that needs
EXECUTE on the source model as well, the copy keeps its run (and run -> version lineage) and adds
the edge source version -> new version.
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from pathlib import Path

import yaml
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from lakeray.catalog import authz, names
from lakeray.catalog import securables as rows
from lakeray.catalog.audit import AuditLog, denial
from lakeray.catalog.privileges import Privilege, SecurableType
from lakeray.catalog.securables import Securable
from lakeray.catalog.service import CatalogService
from lakeray.errors import Conflict, InvalidArgument, LakerayError, NotFound, PermissionDenied
from lakeray.ids import now_ms
from lakeray.model_registry import search as rs
from lakeray.model_registry.sources import resolve_source
from lakeray.model_registry.tables import model_aliases, model_version_tags, model_versions
from lakeray.principals.service import Caller
from lakeray.storage.models import lineage_edges, securables
from lakeray.tracking import search
from lakeray.tracking.artifacts import ArtifactStore, open_regular

ST = SecurableType
P = Privilege
READY = "READY"
MAX_DESCRIPTION = 65536
MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS = 250, 5000, 100
_ALIAS = re.compile(r"[A-Za-z0-9_\-]{1,255}")
_RESERVED_ALIAS = re.compile(r"(v\d+|latest)", re.IGNORECASE)
_VERSION_COLUMNS = ("source", "run_id", "run_link", "logged_model_id", "status", "status_message",
                    "description", "storage_location", "created_at", "created_by", "updated_at", "updated_by")


def _text(value: object, what: str, limit: int, required: bool = False) -> str | None:
    if value is None or (value == "" and not required):
        if required:
            raise InvalidArgument(f"{what} is required")
        return None
    return names.text(value, what, limit)


def version_number(value: object) -> int:
    """A version number from the wire (MLflow sends ``"3"``, Unity Catalog ``3``)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise InvalidArgument(f"version must be a positive integer, got {value!r}")
    return value


def check_tags(tags: object) -> dict[str, str]:
    """Tags as ``{key: value}`` from a dict or MLflow's ``[{"key", "value"}]``."""
    if tags is None:
        return {}
    if isinstance(tags, list):
        pairs = []
        for tag in tags:
            if not isinstance(tag, dict) or set(tag) - {"key", "value"} or "key" not in tag:
                raise InvalidArgument("tags must be a list of {key, value} objects")
            pairs.append((tag["key"], tag.get("value", "")))
    elif isinstance(tags, dict):
        pairs = list(tags.items())
    else:
        raise InvalidArgument("tags must be a list of {key, value} objects or a map")
    if len(pairs) > MAX_TAGS:
        raise InvalidArgument(f"at most {MAX_TAGS} tags may be set at once")
    out = {}
    for key, value in pairs:
        out[check_tag_key(key)] = names.text(value if value is not None else "", f"tag {key!r} value", MAX_TAG_VALUE)
    return out


def check_tag_key(key: object) -> str:
    """A tag key: 1-250 characters, no NUL."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidArgument("tag key must be a non-empty string")
    return names.text(key, "tag key", MAX_TAG_KEY)


def check_alias(alias: object) -> str:
    """An alias: letters, digits, ``_`` and ``-``; ``latest`` and ``v<n>`` are reserved (as MLflow)."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidArgument(f"invalid alias {alias!r}: use 1-255 letters, digits, '_' or '-'")
    if _RESERVED_ALIAS.fullmatch(alias):
        raise InvalidArgument(f"alias {alias!r} is reserved ('latest' and 'v<number>' name versions)")
    return alias.lower()


#: libyaml's safe loader where the wheel has it (~20x faster than the pure-Python one, which
#: took a quarter of a registration); the same safe subset of YAML either way.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _signature(version_dir: Path) -> str | None:
    """The ``signature`` of the version's MLmodel file as JSON, if there is a readable one
    (``version_dir``: the directory :meth:`ArtifactStore.copy_tree` just filled)."""
    try:
        with open_regular(version_dir / "MLmodel", "MLmodel") as f:
            meta = yaml.load(f.read(), Loader=_YAML_LOADER)
    except (yaml.YAMLError, LakerayError, UnicodeDecodeError):
        return None  # a missing or malformed MLmodel is the model's problem, not the registration's
    signature = meta.get("signature") if isinstance(meta, dict) else None
    return json.dumps(signature) if isinstance(signature, dict) else None


# A version's reads, built once (a statement built per call costs more to build than to run).
_VERSION = select(model_versions).where(model_versions.c.model_id == bindparam("model_id"),
                                        model_versions.c.version == bindparam("version"))
_VERSION_TAGS = select(model_version_tags.c.key, model_version_tags.c.value).where(
    model_version_tags.c.model_id == bindparam("model_id"), model_version_tags.c.version == bindparam("version"))
_VERSION_ALIASES = select(model_aliases.c.alias).where(model_aliases.c.model_id == bindparam("model_id"),
                                                       model_aliases.c.version == bindparam("version"))


class ModelRegistry:
    """Registered models and versions; every method takes the caller first."""

    def __init__(self, catalog: CatalogService, audit: AuditLog, store: ArtifactStore,
                 default_schema: str = "main.default"):
        self.catalog, self.db, self.audit, self.store = catalog, catalog.db, audit, store
        self.default_schema = ".".join(names.full_name(default_schema, 2, "default model schema"))
        catalog.locate[ST.REGISTERED_MODEL] = lambda obj: store.location_uri("models", obj.id)
        catalog.purge.append(self._purge)
        catalog.has_contents[ST.REGISTERED_MODEL] = self._has_versions
        catalog.on_drop.append(self._free_storage)

    # -- names and lookups -----------------------------------------------------------------
    def full_name(self, name: object) -> str:
        """``catalog.schema.model``; a dot-free MLflow name lands in the default schema."""
        if isinstance(name, str) and name and "." not in name:
            name = f"{self.default_schema}.{name}"
        return ".".join(names.full_name(name, 3, "registered model name"))

    def _model(self, conn: Connection, caller: Caller, name: object, action: str, manage: bool = False,
               privilege: Privilege = P.EXECUTE) -> Securable:
        full = self.full_name(name)
        obj = rows.find(conn, ST.REGISTERED_MODEL, full)
        if obj is None:
            raise NotFound(f"Registered Model with name={full} not found")
        try:
            if manage:
                authz.require_manage(conn, caller, obj)
            else:
                authz.require(conn, caller, obj, privilege)
        except PermissionDenied as e:
            raise denial(e, action, ST.REGISTERED_MODEL.value, full) from None
        return obj

    @staticmethod
    def _version_row(conn: Connection, obj: Securable, version: int):
        row = conn.execute(_VERSION, {"model_id": obj.id, "version": version}).first()
        if row is None:
            raise NotFound(f"Model Version (name={obj.full_name}, version={version}) not found")
        return row

    def _version_view(self, conn: Connection, obj: Securable, row) -> dict:
        key = {"model_id": obj.id, "version": row.version}
        tags = dict(conn.execute(_VERSION_TAGS, key).all())
        aliases = sorted(conn.execute(_VERSION_ALIASES, key).scalars())
        view = {k: getattr(row, k) for k in _VERSION_COLUMNS}
        view.update(model=obj, version=row.version, tags=tags, aliases=aliases,
                    signature=json.loads(row.signature) if row.signature else None)
        return view

    def _model_view(self, conn: Connection, obj: Securable) -> dict:
        aliases = dict(conn.execute(select(model_aliases.c.alias, model_aliases.c.version).where(
            model_aliases.c.model_id == obj.id).order_by(model_aliases.c.alias)).all())
        latest = conn.execute(select(model_versions).where(model_versions.c.model_id == obj.id)
                              .order_by(model_versions.c.version.desc()).limit(1)).first()
        return {"model": obj, "tags": obj.tags, "aliases": aliases,
                "latest": self._version_view(conn, obj, latest) if latest is not None else None}

    # -- catalog hooks -----------------------------------------------------------------------
    @staticmethod
    def _has_versions(conn: Connection, obj: Securable) -> bool:
        return conn.execute(select(model_versions.c.version).where(
            model_versions.c.model_id == obj.id).limit(1)).first() is not None

    @staticmethod
    def _purge(conn: Connection, doomed: list[Securable]) -> None:
        ids = [o.id for o in doomed if o.type == ST.REGISTERED_MODEL]
        if ids:
            for table in (model_aliases, model_version_tags, model_versions):
                conn.execute(delete(table).where(table.c.model_id.in_(ids)))

    def _free_storage(self, doomed: list[Securable]) -> None:
        for obj in doomed:
            if obj.type == ST.REGISTERED_MODEL and obj.storage_location:
                with suppress(LakerayError, OSError):  # storage is freed best-effort after the commit
                    self.store.delete(obj.storage_location)

    # -- registered models --------------------------------------------------------------------
    def create_model(self, caller: Caller, name: object, description: object = None, tags: object = None) -> dict:
        """Create a registered model (CREATE MODEL on the schema); the caller owns it."""
        full = self.full_name(name)
        self.catalog.create(caller, ST.REGISTERED_MODEL, full, comment=_text(description, "description", MAX_DESCRIPTION),
                            spec={"last_version": 0}, tags=check_tags(tags))
        return self.get_model(caller, full)

    def get_model(self, caller: Caller, name: object) -> dict:
        """A registered model with its tags, aliases and latest version (EXECUTE)."""
        with self.db.read() as conn:
            return self._model_view(conn, self._model(conn, caller, name, "get_registered_model"))

    def update_model(self, caller: Caller, name: object, description: object = None, new_name: object = None,
                     owner: object = None) -> dict:
        """Change the description or owner, or rename within the schema (owner or MANAGE)."""
        full = self.full_name(name)
        changes: dict = {} if owner is None else {"owner": owner}
        if description is not None:
            changes["comment"] = _text(description, "description", MAX_DESCRIPTION) or ""
        if new_name is not None:
            target = self.full_name(new_name)
            if target.rsplit(".", 1)[0] != full.rsplit(".", 1)[0]:
                raise InvalidArgument("a registered model can only be renamed within its schema "
                                      f"({full.rsplit('.', 1)[0]})")
            changes["new_name"] = target.rsplit(".", 1)[1]
        if changes:
            self.catalog.update(caller, ST.REGISTERED_MODEL, full, **changes)
        return self.get_model(caller, self.full_name(new_name) if new_name is not None else full)

    def delete_model(self, caller: Caller, name: object, force: bool = True) -> None:
        """Drop the model with its versions, aliases and artifacts (owner or MANAGE)."""
        self.catalog.delete(caller, ST.REGISTERED_MODEL, self.full_name(name), force=force)

    def set_model_tag(self, caller: Caller, name: object, key: object, value: object) -> None:
        """Set one tag on a registered model (owner or MANAGE)."""
        tag = check_tags({check_tag_key(key): value})
        self._change_model_tags(caller, name, "set_registered_model_tag", lambda tags: {**tags, **tag})

    def delete_model_tag(self, caller: Caller, name: object, key: object) -> None:
        """Remove one tag of a registered model (owner or MANAGE); 404 if it is not set."""
        key = check_tag_key(key)

        def drop(tags: dict) -> dict:
            if key not in tags:
                raise NotFound(f"No tag with name: {key} in registered model {self.full_name(name)}")
            return {k: v for k, v in tags.items() if k != key}

        self._change_model_tags(caller, name, "delete_registered_model_tag", drop)

    def _change_model_tags(self, caller: Caller, name: object, action: str, change) -> None:
        with self.db.write() as conn:
            obj = self._model(conn, caller, name, action, manage=True)
            tags = change(dict(obj.tags))
            if len(tags) > MAX_TAGS:
                raise InvalidArgument(f"a registered model holds at most {MAX_TAGS} tags")
            rows.save(conn, obj, caller.name, tags=tags)
            self.audit.record(caller.name, action, ST.REGISTERED_MODEL.value, obj.full_name, conn=conn)

    def search_models(self, caller: Caller, filter: object = None, max_results: object = None,
                      order_by: object = None, page_token: object = None,
                      schema: str | None = None) -> tuple[list[dict], str | None]:
        """Registered models the caller may read matching an MLflow filter, paged."""
        comparisons = search.parse_filter(rs.REGISTERED_MODELS, filter)
        order = search.parse_order_by(rs.REGISTERED_MODELS, order_by)
        size = search.max_results(max_results, rs.DEFAULT_MODELS_PAGE, rs.MAX_RESULTS_LIMIT)
        digest = search.query_digest("models", caller.name, filter, order_by, schema)
        offset = search.page_offset(page_token, digest)
        q = select(securables.c.full_name).where(securables.c.type == ST.REGISTERED_MODEL.value)
        if schema is not None:
            q = q.where(securables.c.full_name.like(schema.replace("_", "\\_") + ".%", escape="\\"))
        exact = [c.value for c in comparisons if c.entity == "attribute" and c.key == "name" and c.op == "="]
        if exact:  # the common filter "name = 'x'": look up one name instead of all models
            q = q.where(securables.c.full_name == self._filter_name(exact[0]))
        with self.db.read() as conn:
            found = []
            for full in conn.execute(q).scalars():
                obj = rows.find(conn, ST.REGISTERED_MODEL, full)
                if obj is not None and self._readable(conn, caller, obj):
                    found.append(self._model_view(conn, obj))

        def attribute(view: dict, key: str):
            obj = view["model"]
            return {"name": obj.full_name, "creation_timestamp": obj.created_at,
                    "last_updated_timestamp": obj.updated_at}[key]

        comparisons = [self._name_comparison(c) for c in comparisons]
        hits = rs.sort([v for v in found if rs.matcher(comparisons, attribute)(v)], order, attribute,
                       [("name", True)])
        page = hits[offset:offset + size]
        more = offset + size < len(hits)
        return page, search.page_token(offset + size, digest) if more else None

    def _filter_name(self, value: object) -> str:
        """A name or pattern in a filter, mapped like names elsewhere: ``churn`` -> ``main.default.churn``,
        ``churn%`` -> ``main.default.churn%`` (names are stored lower-case)."""
        if isinstance(value, str) and value and "." not in value:
            return f"{self.default_schema}.{value.lower()}"
        return value.lower() if isinstance(value, str) else value

    def _name_comparison(self, comp: search.Comparison) -> search.Comparison:
        if comp.entity != "attribute" or comp.key != "name" or comp.op in ("IS NULL", "IS NOT NULL"):
            return comp
        value = tuple(self._filter_name(v) for v in comp.value) if isinstance(comp.value, tuple) \
            else self._filter_name(comp.value)
        return search.Comparison(comp.entity, comp.key, comp.op, value, comp.text)

    @staticmethod
    def _readable(conn: Connection, caller: Caller, obj: Securable) -> bool:
        try:
            authz.require(conn, caller, obj, P.EXECUTE)
        except PermissionDenied:
            return False
        return True

    # -- versions ---------------------------------------------------------------------------
    def create_version(self, caller: Caller, name: object, source: object, run_id: object = None,
                       description: object = None, tags: object = None, run_link: object = None,
                       logged_model_id: object = None) -> dict:
        """Register the artifacts of ``source`` as the model's next version (owner or MANAGE).

        The artifacts are copied into the version's managed storage before the version is
        committed; a failure leaves no version and no files behind.
        """
        description = _text(description, "description", MAX_DESCRIPTION)
        run_link = _text(run_link, "run_link", 4096)
        tag_map = check_tags(tags)
        for value, what in ((run_id, "run_id"), (logged_model_id, "model_id")):
            if value not in (None, "") and not isinstance(value, str):
                raise InvalidArgument(f"{what} must be a string")
        storage = None
        try:
            with self.db.write() as conn:
                obj = self._model(conn, caller, name, "create_model_version", manage=True)
                src = resolve_source(conn, caller, self.store, source, model_name=self.full_name)
                if run_id and src.run_id and run_id != src.run_id:
                    raise InvalidArgument(f"run_id {run_id!r} does not match the source's run {src.run_id!r}")
                if logged_model_id and src.logged_model_id and logged_model_id != src.logged_model_id:
                    raise InvalidArgument(f"model_id {logged_model_id!r} does not match the source's logged "
                                          f"model {src.logged_model_id!r}")
                version = int(obj.spec.get("last_version", 0)) + 1
                storage = self.store.location_uri("models", obj.id, "versions", str(version))
                try:
                    copied = self.store.copy_tree(src.location, storage, src.path)
                except Conflict:  # leftovers of a copy whose transaction never committed
                    self.store.delete(storage)
                    copied = self.store.copy_tree(src.location, storage, src.path)
                now = now_ms()
                row = dict(model_id=obj.id, version=version, source=source, run_id=run_id or src.run_id,
                           run_link=run_link, logged_model_id=logged_model_id or src.logged_model_id, status=READY,
                           status_message=None, description=description, storage_location=storage,
                           signature=_signature(copied), created_at=now, created_by=caller.name,
                           updated_at=now, updated_by=caller.name)
                conn.execute(model_versions.insert(), row)
                if tag_map:
                    conn.execute(model_version_tags.insert(), [
                        {"model_id": obj.id, "version": version, "key": k, "value": v} for k, v in tag_map.items()])
                rows.save(conn, obj, caller.name, spec={**obj.spec, "last_version": version})
                if run_id or src.run_id:
                    conn.execute(lineage_edges.insert(), dict(
                        source_type="run", source_name=run_id or src.run_id, target_type="model_version",
                        target_name=f"{obj.full_name}/{version}", run_id=run_id or src.run_id, job_id=None,
                        created_at=now, created_by=caller.name))
                if src.model_version:  # copied from another version (a promotion across catalogs)
                    conn.execute(lineage_edges.insert(), dict(
                        source_type="model_version", source_name=src.model_version, target_type="model_version",
                        target_name=f"{obj.full_name}/{version}", run_id=None, job_id=None,
                        created_at=now, created_by=caller.name))
                self.audit.record(caller.name, "create_model_version", ST.REGISTERED_MODEL.value, obj.full_name,
                                  conn=conn, detail={"version": version, "source": source})
                # What was just written, without reading it back: a new version has no aliases.
                view = {k: row[k] for k in _VERSION_COLUMNS}
                view.update(model=obj, version=version, tags=tag_map, aliases=[],
                            signature=json.loads(row["signature"]) if row["signature"] else None)
        except BaseException:
            if storage is not None:
                with suppress(LakerayError, OSError):
                    self.store.delete(storage)
            raise
        return view

    def get_version(self, caller: Caller, name: object, version: object) -> dict:
        """One version with its tags and aliases (EXECUTE)."""
        number = version_number(version)
        with self.db.read() as conn:
            obj = self._model(conn, caller, name, "get_model_version")
            return self._version_view(conn, obj, self._version_row(conn, obj, number))

    def list_versions(self, caller: Caller, name: object, max_results: object = None,
                      page_token: object = None) -> tuple[list[dict], str | None]:
        """A model's versions, newest first, paged (EXECUTE)."""
        size = search.max_results(max_results, rs.DEFAULT_MODELS_PAGE, rs.MAX_RESULTS_LIMIT)
        digest = search.query_digest("versions", self.full_name(name))
        offset = search.page_offset(page_token, digest)
        with self.db.read() as conn:
            obj = self._model(conn, caller, name, "list_model_versions")
            found = conn.execute(select(model_versions).where(model_versions.c.model_id == obj.id)
                                 .order_by(model_versions.c.version.desc()).offset(offset).limit(size + 1)).all()
            views = [self._version_view(conn, obj, row) for row in found[:size]]
        return views, search.page_token(offset + size, digest) if len(found) > size else None

    def search_versions(self, caller: Caller, filter: object = None, max_results: object = None,
                        order_by: object = None, page_token: object = None) -> tuple[list[dict], str | None]:
        """Versions of models the caller may read matching an MLflow filter, paged."""
        comparisons = [self._name_comparison(c) for c in search.parse_filter(rs.MODEL_VERSIONS, filter)]
        order = search.parse_order_by(rs.MODEL_VERSIONS, order_by)
        size = search.max_results(max_results, rs.DEFAULT_VERSIONS_PAGE, 200_000)
        digest = search.query_digest("model versions", caller.name, filter, order_by)
        offset = search.page_offset(page_token, digest)
        q = select(model_versions, securables.c.full_name).join(
            securables, securables.c.id == model_versions.c.model_id)
        for comp in comparisons:  # narrow the scan on the usual filters; the matcher decides
            if comp.entity == "attribute" and comp.op in ("=", "IN"):
                column = {"name": securables.c.full_name, "run_id": model_versions.c.run_id}.get(comp.key)
                if column is not None:
                    values = comp.value if isinstance(comp.value, tuple) else (comp.value,)
                    q = q.where(column.in_(values))
        views, allowed = [], {}
        with self.db.read() as conn:
            for row in conn.execute(q).all():
                if row.model_id not in allowed:
                    obj = rows.find(conn, ST.REGISTERED_MODEL, row.full_name)
                    allowed[row.model_id] = obj if obj is not None and self._readable(conn, caller, obj) else None
                if allowed[row.model_id] is not None:
                    views.append(self._version_view(conn, allowed[row.model_id], row))

        def attribute(view: dict, key: str):
            return {"name": view["model"].full_name, "run_id": view["run_id"], "source_path": view["source"],
                    "status": view["status"], "model_id": view["logged_model_id"], "version_number": view["version"],
                    "creation_timestamp": view["created_at"], "last_updated_timestamp": view["updated_at"]}[key]

        hits = rs.sort([v for v in views if rs.matcher(comparisons, attribute)(v)], order, attribute,
                       [("name", True), ("version_number", False)])
        more = offset + size < len(hits)
        return hits[offset:offset + size], search.page_token(offset + size, digest) if more else None

    def update_version(self, caller: Caller, name: object, version: object, description: object = None) -> dict:
        """Change a version's description (owner or MANAGE)."""
        number = version_number(version)
        text = _text(description, "description", MAX_DESCRIPTION) or ""
        with self.db.write() as conn:
            obj = self._model(conn, caller, name, "update_model_version", manage=True)
            self._version_row(conn, obj, number)
            conn.execute(update(model_versions).where(model_versions.c.model_id == obj.id,
                                                      model_versions.c.version == number)
                         .values(description=text, updated_at=now_ms(), updated_by=caller.name))
            self.audit.record(caller.name, "update_model_version", ST.REGISTERED_MODEL.value, obj.full_name,
                              conn=conn, detail={"version": number})
            return self._version_view(conn, obj, self._version_row(conn, obj, number))

    def delete_version(self, caller: Caller, name: object, version: object) -> None:
        """Delete a version, its tags and the aliases pointing at it, then its files (owner or MANAGE)."""
        number = version_number(version)
        with self.db.write() as conn:
            obj = self._model(conn, caller, name, "delete_model_version", manage=True)
            row = self._version_row(conn, obj, number)
            for table in (model_aliases, model_version_tags, model_versions):
                conn.execute(delete(table).where(table.c.model_id == obj.id, table.c.version == number))
            self.audit.record(caller.name, "delete_model_version", ST.REGISTERED_MODEL.value, obj.full_name,
                              conn=conn, detail={"version": number})
        with suppress(LakerayError, OSError):
            self.store.delete(row.storage_location)

    def set_version_tag(self, caller: Caller, name: object, version: object, key: object, value: object) -> None:
        """Set one tag on a version (owner or MANAGE)."""
        number, tag = version_number(version), check_tags({check_tag_key(key): value})
        with self.db.write() as conn:
            obj = self._model(conn, caller, name, "set_model_version_tag", manage=True)
            self._version_row(conn, obj, number)
            for k, v in tag.items():
                where = (model_version_tags.c.model_id == obj.id, model_version_tags.c.version == number,
                         model_version_tags.c.key == k)
                if conn.execute(update(model_version_tags).where(*where).values(value=v)).rowcount == 0:
                    conn.execute(model_version_tags.insert().values(model_id=obj.id, version=number, key=k, value=v))
            self.audit.record(caller.name, "set_model_version_tag", ST.REGISTERED_MODEL.value, obj.full_name,
                              conn=conn, detail={"version": number, "key": key})

    def delete_version_tag(self, caller: Caller, name: object, version: object, key: object) -> None:
        """Remove one tag of a version (owner or MANAGE); 404 if it is not set."""
        number, key = version_number(version), check_tag_key(key)
        with self.db.write() as conn:
            obj = self._model(conn, caller, name, "delete_model_version_tag", manage=True)
            self._version_row(conn, obj, number)
            gone = conn.execute(delete(model_version_tags).where(
                model_version_tags.c.model_id == obj.id, model_version_tags.c.version == number,
                model_version_tags.c.key == key)).rowcount
            if not gone:
                raise NotFound(f"No tag with name: {key} on model version {obj.full_name}/{number}")
            self.audit.record(caller.name, "delete_model_version_tag", ST.REGISTERED_MODEL.value, obj.full_name,
                              conn=conn, detail={"version": number, "key": key})

    # -- aliases ----------------------------------------------------------------------------
    def set_alias(self, caller: Caller, name: object, alias: object, version: object) -> None:
        """Point ``alias`` at a version, moving it if it pointed elsewhere (owner or MANAGE)."""
        alias, number = check_alias(alias), version_number(version)
        with self.db.write() as conn:
            obj = self._model(conn, caller, name, "set_registered_model_alias", manage=True)
            self._version_row(conn, obj, number)
            where = (model_aliases.c.model_id == obj.id, model_aliases.c.alias == alias)
            if conn.execute(update(model_aliases).where(*where).values(version=number)).rowcount == 0:
                conn.execute(model_aliases.insert().values(model_id=obj.id, alias=alias, version=number))
            rows.save(conn, obj, caller.name)
            self.audit.record(caller.name, "set_registered_model_alias", ST.REGISTERED_MODEL.value, obj.full_name,
                              conn=conn, detail={"alias": alias, "version": number})

    def delete_alias(self, caller: Caller, name: object, alias: object) -> None:
        """Remove an alias (owner or MANAGE); 404 if the model has no such alias."""
        alias = check_alias(alias)
        with self.db.write() as conn:
            obj = self._model(conn, caller, name, "delete_registered_model_alias", manage=True)
            gone = conn.execute(delete(model_aliases).where(model_aliases.c.model_id == obj.id,
                                                            model_aliases.c.alias == alias)).rowcount
            if not gone:
                raise NotFound(f"Registered model alias {alias} not found on {obj.full_name}")
            rows.save(conn, obj, caller.name)
            self.audit.record(caller.name, "delete_registered_model_alias", ST.REGISTERED_MODEL.value,
                              obj.full_name, conn=conn, detail={"alias": alias})

    def get_version_by_alias(self, caller: Caller, name: object, alias: object) -> dict:
        """The version an alias points at (EXECUTE)."""
        alias = check_alias(alias)
        with self.db.read() as conn:
            obj = self._model(conn, caller, name, "get_model_version_by_alias")
            number = conn.execute(select(model_aliases.c.version).where(
                model_aliases.c.model_id == obj.id, model_aliases.c.alias == alias)).scalar()
            if number is None:
                raise NotFound(f"Registered model alias {alias} not found on {obj.full_name}")
            return self._version_view(conn, obj, self._version_row(conn, obj, number))

    def latest_versions(self, caller: Caller, name: object, stages: object = None) -> list[dict]:
        """MLflow's latest version per stage; versions here have no stage (``None``)."""
        if stages is not None and (not isinstance(stages, list) or not all(isinstance(s, str) for s in stages)):
            raise InvalidArgument("stages must be a list of strings")
        if stages and not any(s.lower() == "none" for s in stages):
            return []
        view = self.get_model(caller, name)
        return [view["latest"]] if view["latest"] is not None else []
