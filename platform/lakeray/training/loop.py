"""The Ray Train worker loop for causal-LM training (pretraining and fine-tuning alike).

Every worker builds the model, wraps it in the configured engine (DDP or DeepSpeed ZeRO),
resumes from Ray Train's checkpoint if there is one (after a worker died, or an explicit
resume), and steps through its shard of the token blocks. Rank 0 logs per-step metrics to the
tracker and prints progress; every ``checkpoint_every`` steps and at the end all ranks write a
checkpoint that Ray Train persists under the run's artifacts. The final checkpoint also holds
the full model in Hugging Face format (``hf/``), which the driver registers.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

STATE_FILE = "state.json"
HF_DIR = "hf"


def _batches(shard, batch_size: int):
    """Endless ``{"input_ids"}`` batches from a Ray Data shard, epoch after epoch."""
    epoch = 0
    while True:
        seen = 0
        for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True, dtypes=None):
            seen += 1
            yield batch
        if not seen:
            raise RuntimeError("this worker's shard of the training data holds no full batch: "
                               "use more data, a smaller batch_size or block_size, or fewer workers")
        epoch += 1


def _eval_loss(engine, shard, batch_size: int, max_batches: int, device) -> float | None:
    """Mean loss over up to ``max_batches`` eval batches, the same count on every rank."""
    import torch
    import torch.distributed as dist

    batches = []
    for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True):
        batches.append(batch)
        if len(batches) >= max_batches:
            break
    count = torch.tensor([len(batches)], dtype=torch.long)
    if dist.is_initialized():
        dist.all_reduce(count, op=dist.ReduceOp.MIN)  # ZeRO-3 forwards are collective
    n = int(count.item())
    if n == 0:
        return None
    engine.train(False)
    total = torch.tensor([sum(engine.forward_loss(_inputs(b, device)) for b in batches[:n]) / n])
    engine.train(True)
    if dist.is_initialized():
        dist.all_reduce(total)
        total /= dist.get_world_size()
    return float(total.item())


def _inputs(batch: dict, device) -> dict:
    ids = batch["input_ids"].to(device)
    out = {"input_ids": ids, "labels": batch["labels"].to(device) if "labels" in batch else ids}
    if "attention_mask" in batch:
        out["attention_mask"] = batch["attention_mask"].to(device)
    return out


def _build(cfg: dict):
    """``(model, tokenizer)``: a fresh Llama-style model (pretraining), or the base model from
    ``cfg["base_path"]``, with LoRA adapters if ``cfg["lora"]`` is on (fine-tuning)."""
    from lakeray.training import model as model_lib

    if not cfg.get("base_path"):
        from lakeray.training.tokenizer import from_json

        tokenizer = from_json(cfg["tokenizer_json"])
        return model_lib.build(model_lib.llama_config(cfg["size"], tokenizer)), tokenizer
    from lakeray.training.chat import load_tokenizer

    tokenizer = load_tokenizer(cfg["base_path"])
    return model_lib.load_pretrained(cfg["base_path"], cfg.get("lora")), tokenizer


def train_loop(cfg: dict) -> None:
    """``train_loop_per_worker`` of the TorchTrainer; ``cfg`` is the driver's plain-dict config."""
    import math

    import ray.train
    import torch

    from lakeray.training.config import Optim, Scaling, Schedule
    from lakeray.training.engine import make_engine

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    optim, scaling, schedule = Optim(**cfg["optim"]), Scaling(**cfg["scaling"]), Schedule(**cfg["schedule"])
    torch.manual_seed(cfg["seed"])
    device = ray.train.torch.get_device()

    net, tokenizer = _build(cfg)
    engine = make_engine(net, optim, scaling, device)

    step, tokens_seen = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and cfg.get("resume_from"):
        checkpoint = ray.train.Checkpoint(cfg["resume_from"])
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = engine.load(Path(d))
        step, tokens_seen = int(state.get("step", 0)), int(state.get("tokens_seen", 0))
        if rank == 0:
            print(f"resumed from the checkpoint at step {step}", flush=True)

    tracker = _Tracker(cfg) if rank == 0 else None
    train_shard = ray.train.get_dataset_shard("train")
    eval_shard = ray.train.get_dataset_shard("eval")
    batches = _batches(train_shard, optim.batch_size)
    block = cfg["size"]["block_size"]
    engine.train(True)
    while step < optim.max_steps:
        started = time.perf_counter()
        losses = [engine.micro_step(_inputs(next(batches), device)) for _ in range(optim.grad_accum)]
        grad_norm = engine.finish_step()
        step += 1
        step_tokens = optim.batch_size * block * optim.grad_accum * world
        tokens_seen += step_tokens
        loss = sum(losses) / len(losses)
        metrics = {"loss": loss, "lr": engine.lr(), "grad_norm": grad_norm,
                   "tokens_per_s": step_tokens / max(1e-9, time.perf_counter() - started),
                   "tokens_seen": tokens_seen}
        last = step == optim.max_steps
        if step % schedule.eval_every == 0 or last:
            eval_loss = _eval_loss(engine, eval_shard, optim.batch_size, schedule.eval_batches, device)
            if eval_loss is not None:
                metrics.update(eval_loss=eval_loss, perplexity=math.exp(min(eval_loss, 50.0)))
        if tracker is not None and (step % schedule.log_every == 0 or last or "eval_loss" in metrics):
            tracker.log(metrics, step, optim.max_steps)
        if step % schedule.checkpoint_every == 0 or last:
            if tracker is not None:
                tracker.flush()  # the metrics up to a checkpoint are in the run before it
            _checkpoint(engine, rank, {"step": step, "tokens_seen": tokens_seen}, metrics, last, cfg, tokenizer)
    if tracker is not None:
        tracker.flush()


def _checkpoint(engine, rank: int, state: dict, metrics: dict, final: bool, cfg: dict, tokenizer) -> None:
    """Write this rank's part of a checkpoint and hand it to Ray Train (which merges the ranks'
    files into one checkpoint directory under the run's artifacts)."""
    import ray.train

    with tempfile.TemporaryDirectory(prefix="lakeray-ckpt-") as tmp:
        directory = Path(tmp)
        engine.save(directory, rank, state)
        full = engine.full_state_dict() if final else None  # collective under ZeRO-3
        if rank == 0:
            (directory / STATE_FILE).write_text(json.dumps(state))
            if final:
                _export(full, cfg, tokenizer, directory / HF_DIR)
        # the run id travels with the metrics, so a search can name each trial's run
        ray.train.report({k: v for k, v in metrics.items() if isinstance(v, int | float)} | state
                         | {"run_id": cfg["run_id"]}, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _export(state_dict: dict, cfg: dict, tokenizer, out: Path) -> None:
    """The trained model and its tokenizer in Hugging Face format (safetensors): the full
    weights, LoRA adapters merged in; or, with ``lora.merge`` off, the adapters alone."""
    from lakeray.training import model as model_lib

    if cfg.get("base_path"):
        net = model_lib.load_pretrained(cfg["base_path"], cfg.get("lora"))
    else:
        net = model_lib.build(model_lib.llama_config(cfg["size"], tokenizer))
    missing, unexpected = net.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=False)
    if unexpected:
        raise RuntimeError(f"the trained weights do not fit the model: {unexpected[:5]}")
    lora = cfg.get("lora") or {}
    if lora.get("enabled") and lora.get("merge", True):
        net = net.merge_and_unload()
    net.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


class _Tracker:
    """Rank 0's link to the run: per-step metrics to the tracker, a progress line to stdout.

    Points are sent in batches of up to ``flush_every`` steps (one transaction each), so logging
    does not slow the step loop; the last batch is sent at every checkpoint and at the end.
    """

    def __init__(self, cfg: dict, flush_every: int = 10):
        import lakeray
        from lakeray.settings import Settings

        self.client = lakeray.connect(token=cfg["token"], settings=Settings(**cfg["settings"]))
        self.run_id = cfg["run_id"]
        self.flush_every = flush_every
        self.pending: list[tuple[int, dict]] = []

    def log(self, metrics: dict, step: int, total: int) -> None:
        self.pending.append((step, metrics))
        line = " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "tokens_seen")
        print(f"step {step}/{total} {line}", flush=True)
        if len(self.pending) >= self.flush_every or "eval_loss" in metrics:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.client.log_metric_steps(self.run_id, dict(self.pending))
            self.pending = []
