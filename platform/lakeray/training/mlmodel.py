"""The ``MLmodel`` file of a transformers model directory, so registry, serving and MLflow
clients can tell what a logged model is and how to load it."""

from __future__ import annotations

from pathlib import Path

import yaml

KINDS = ("chat", "completion", "embedding")


def write_mlmodel(directory: Path, run_id: str | None, kind: str, source: str) -> Path:
    """Write ``directory/MLmodel`` for a Hugging Face model saved there with ``save_pretrained``.

    ``kind`` says how it is served: ``chat`` (has a chat template), ``completion`` or ``embedding``.
    """
    import transformers

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    flavor = "sentence_transformers" if kind == "embedding" else "transformers"
    spec = {
        "artifact_path": "model",
        "run_id": run_id,
        "flavors": {flavor: {"framework": "pt", "transformers_version": transformers.__version__,
                             "task": {"chat": "llm/v1/chat", "completion": "text-generation",
                                      "embedding": "llm/v1/embeddings"}[kind],
                             "model_binary": "."}},
        "lakeray": {"kind": kind, "source": source},
    }
    path = Path(directory) / "MLmodel"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
