"""The driver side of supervised fine-tuning: a catalog model on a chat table.

EXECUTE on the base model version and SELECT on the table (and a ``messages``-shaped column)
are checked before any worker starts; the workers load the base model from the version's
managed storage, add LoRA adapters if asked, and train on the assistant's tokens only.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lakeray.errors import InvalidArgument, NotFound, PermissionDenied
from lakeray.training.config import BaseModelRef, FinetuneConfig
from lakeray.training.runner import Job, Prepared, _flatten, check_output_model, check_source, run_job


def check_chat_source(client, table: str, column: str) -> Prepared:
    """:func:`check_source` for a column of ``[{role, content}]`` message lists."""
    def fits(col: dict) -> bool:
        text = str(col.get("type_text", "")).lower()
        return text.startswith("array<struct<") and "role" in text and "content" in text

    return check_source(client, table, column, fits, "a list of {role, content} messages", shown="type_text")


def resolve_base_model(client, settings, ref: BaseModelRef) -> tuple[Path, dict]:
    """The base model version's directory (after the EXECUTE check) and its info."""
    from lakeray.tracking.artifacts import ArtifactStore

    what = f"base_model {ref.name}" + (f" version {ref.version}" if ref.version else
                                        f"@{ref.alias}" if ref.alias else "")
    try:
        if ref.version is not None:
            info = client.get_model_version(ref.name, ref.version)
        elif ref.alias is not None:
            info = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            versions = client.list_model_versions(ref.name).get("model_versions", [])
            if not versions:
                raise InvalidArgument(f"{what} has no versions")
            info = versions[0]
    except NotFound:
        raise InvalidArgument(f"{what} does not exist") from None
    except PermissionDenied as e:
        raise PermissionDenied(f"{what}: {e.message} (fine-tuning needs EXECUTE on the base model)") from None
    path = ArtifactStore(settings.artifact_root).location_path(info["storage_location"])
    meta = {}
    if (path / "MLmodel").is_file():
        meta = (yaml.safe_load((path / "MLmodel").read_text()) or {}).get("lakeray", {}) or {}
    if meta.get("kind") == "embedding" or not (path / "config.json").is_file():
        raise InvalidArgument(f"{what} is not a causal language model (no config.json, or an embedding model)")
    return path, info


def finetune(cfg: FinetuneConfig, client, settings, resume_run: str | None = None,
             parent_run_id: str | None = None, callbacks: list | None = None) -> dict:
    """Fine-tune as ``client``'s caller (see :func:`lakeray.training.runner.run_job`)."""
    base_path, base = resolve_base_model(client, settings, cfg.base_model)
    prepared = check_chat_source(client, cfg.data.table, cfg.data.column)
    check_output_model(client, cfg.output.model)
    base_version = f"{cfg.base_model.name}/{base['version']}"

    def prepare(token: str, run: dict, resume) -> tuple[dict, dict]:
        from lakeray.training.chat import chat_blocks
        from lakeray.training.data import DATA_CPUS

        ds = client.read_dataset(cfg.data.table, version=prepared.table_version, columns=[cfg.data.column],
                                 num_cpus=DATA_CPUS)
        if cfg.data.max_rows:
            ds = ds.limit(cfg.data.max_rows)
        train_ds, eval_ds = chat_blocks(ds, str(base_path), cfg.data.column, cfg.max_length,
                                        cfg.data.eval_fraction)
        return ({"base_path": str(base_path), "lora": cfg.lora.model_dump(), "size": {"block_size": cfg.max_length}},
                {"train": train_ds, "eval": eval_ds})

    kept = "merged" if cfg.lora.merge else "adapters kept"
    mode = f"LoRA r={cfg.lora.r}, {kept}" if cfg.lora.enabled else "full"
    job = Job("finetune", cfg, f"fine-tuning {base_version} ({mode}) on {cfg.data.table}@v{prepared.table_version}",
              {**_flatten(cfg.model_dump(mode="json")), "base_model.resolved_version": base["version"]},
              [(cfg.data.table, prepared.table_version, cfg.data.column)], prepare, "chat",
              upstream=[("model_version", base_version)])
    return run_job(job, client, settings, resume_run, parent_run_id, callbacks)
