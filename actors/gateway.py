"""The gateway actor: what the AI gateway keeps in one place for every ingress replica.

Named ``gateway`` in namespace ``lakeray``. It holds the rate-limit windows (exact across
replicas because they live only here, :mod:`lakeray.serving.limits`), buffers usage and
inference-table rows and appends them in batches (:mod:`lakeray.serving.gateway_log`), and
embeds texts for the valid-topics guardrail. Its windows are memory only: a restart starts them
empty, the rows it had not flushed yet are lost, and nothing else is.
"""

from __future__ import annotations

import threading

from lakeray import heap
from lakeray.actors.base import named, start
from lakeray.settings import GATEWAY_ACTOR, Settings


class GatewayActor:
    """Rate-limit admission, batched query logs and topic embeddings."""

    def __init__(self, settings: dict):
        from lakeray.registry import Registry
        from lakeray.serving.gateway_log import BatchWriter
        from lakeray.serving.limits import SlidingWindows
        from lakeray.serving.service import SYSTEM

        self.settings = Settings(**settings)
        self.windows = SlidingWindows()
        self.log = BatchWriter(Registry(self.settings, function_runner=None).tables, SYSTEM)
        self._model = None
        self._model_lock = threading.Lock()
        heap.settle()

    def admit(self, buckets: list) -> dict:
        """Charge a call to ``buckets`` if each has room (see ``SlidingWindows.admit``)."""
        return self.windows.admit(buckets)

    def finish(self, buckets: list, tokens: int, rows: dict) -> None:
        """A call ended: count its tokens and queue its log rows (table name -> rows)."""
        self.windows.add_tokens(buckets, tokens)
        for table, table_rows in rows.items():
            self.log.add(table, table_rows)

    def flush(self) -> int:
        """Append the queued log rows now (tests and shutdown); returns the rows written."""
        return self.log.flush()

    def embed(self, texts: list[str]):
        """L2-normalised all-MiniLM-L6-v2 embeddings of ``texts`` (the topic guardrail's model)."""
        with self._model_lock:
            if self._model is None:
                import os

                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                from lakeray.model_registry.imports import minilm_dir

                self._model = SentenceTransformer(str(minilm_dir()), device="cpu")
        return self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    def ping(self) -> dict:
        """Liveness."""
        return {"ok": True}


def handle(settings: Settings, create: bool = False):
    """The gateway actor handle; with ``create`` it is started if missing."""
    if not create:
        return named(GATEWAY_ACTOR)
    return start(GatewayActor, GATEWAY_ACTOR, settings.to_dict(), max_concurrency=32)
