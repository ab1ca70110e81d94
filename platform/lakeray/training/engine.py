"""One training-step interface over two ways of spreading a model: torch DDP and DeepSpeed ZeRO.

The loop in ``loop.py`` calls ``micro_step`` ``grad_accum`` times and then ``finish_step``; it
saves and loads checkpoints and exports the full weights through the same methods, whatever the
engine. Runs inside a Ray Train worker (the process group is already set up).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

DS_TAG = "zero"  # the DeepSpeed checkpoint tag (one sub-directory per checkpoint)
DS_REDUCE_BUCKET = 500_000_000  # DeepSpeed's default gradient bucket, in elements


def lr_lambda(warmup: int, total: int, min_ratio: float):
    """Linear warmup to 1 over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``."""
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _optimizer(model: torch.nn.Module, optim) -> torch.optim.Optimizer:
    # No weight decay on norms and biases (1-d tensors), as in nanoGPT and Llama recipes.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    # An empty group (LoRA trains no 1-d tensors) is left out: ZeRO drops it and the LR
    # scheduler would then step one group too many.
    groups = [g for g in ({"params": decay, "weight_decay": optim.weight_decay}, {"params": rest, "weight_decay": 0.0})
              if g["params"]]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas))


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 when asked, or on ``auto`` where the device has fast bf16 (CUDA with bf16 support)."""
    if precision == "bf16":
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


class DDPEngine:
    """torch DistributedDataParallel with manual accumulation and clipping."""

    def __init__(self, model: torch.nn.Module, optim, scaling, device: torch.device):
        import ray.train.torch

        self.accum, self.clip = optim.grad_accum, optim.grad_clip
        self.model = ray.train.torch.prepare_model(model)  # DDP when world size > 1, on ``device``
        self.module = self.model.module if hasattr(self.model, "module") else self.model
        self.opt = _optimizer(self.module, optim)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lr_lambda(optim.warmup_steps, optim.max_steps, optim.min_lr_ratio))
        self.bf16 = use_bf16(scaling.precision, device)
        self.device = device
        self._micro = 0

    def micro_step(self, batch: dict) -> float:
        self._micro += 1
        last = self._micro % self.accum == 0
        sync = self.model.no_sync() if hasattr(self.model, "no_sync") and not last else _Null()
        with sync, torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.model(**batch).loss
            (loss / self.accum).backward()
        return float(loss.detach())

    def finish_step(self) -> float:
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.clip)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return float(norm)

    def lr(self) -> float:
        return self.sched.get_last_lr()[0]

    def forward_loss(self, batch: dict) -> float:
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return float(self.module(**batch).loss)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def save(self, directory: Path, rank: int, state: dict) -> None:
        if rank == 0:
            torch.save({"model": self.module.state_dict(), "optim": self.opt.state_dict(),
                        "sched": self.sched.state_dict(), "state": state}, directory / "trainer.pt")

    def load(self, directory: Path) -> dict:
        saved = torch.load(directory / "trainer.pt", map_location=self.device, weights_only=False)
        self.module.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["optim"])
        self.sched.load_state_dict(saved["sched"])
        return saved["state"]

    def full_state_dict(self) -> dict:
        return {k: v.detach().cpu() for k, v in self.module.state_dict().items()}


def deepspeed_config(model: torch.nn.Module, optim, scaling, device: torch.device) -> dict:
    """The DeepSpeed config of a job: batch, accumulation, clipping, ZeRO stage and precision from
    its config, and ZeRO's communication fitted to the model and the device."""
    return {
        "train_micro_batch_size_per_gpu": optim.batch_size,
        "gradient_accumulation_steps": optim.grad_accum,
        "gradient_clipping": optim.grad_clip,
        "zero_optimization": {
            "stage": scaling.zero_stage,
            "reduce_bucket_size": reduce_bucket_size(model),
            # Over gloo (CPU), DeepSpeed's reduce-scatter is one `reduce` per rank on a flattened
            # copy of the bucket, copied back after; one in-place all-reduce of the bucket is
            # cheaper there (~1.5% of a step). NCCL has a real reduce-scatter: keep it on GPUs.
            "reduce_scatter": device.type != "cpu",
        },
        "bf16": {"enabled": use_bf16(scaling.precision, device)},
        # our AdamW (torch's): DeepSpeed's own would JIT-build a fused op for the device
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }


def reduce_bucket_size(model: torch.nn.Module) -> int:
    """DeepSpeed's gradient bucket, never larger than the trainable parameters it has to hold.

    ZeRO allocates the bucket afresh every optimizer step. At the default (5e8 elements, 2 GB
    of fp32) that is a fresh mapping whose touched pages all fault in again each step: on CPU,
    where no caching allocator keeps the block, a small model paid ~10% of its step time for it.
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return max(1, min(DS_REDUCE_BUCKET, trainable))


class DeepSpeedEngine:
    """DeepSpeed with ZeRO stage 0-3 (it accumulates, clips and steps the scheduler itself)."""

    def __init__(self, model: torch.nn.Module, optim, scaling, device: torch.device):
        if device.type == "cpu":
            os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is imported
        import deepspeed

        self.stage = scaling.zero_stage
        config = deepspeed_config(model, optim, scaling, device)
        opt = _optimizer(model, optim)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(optim.warmup_steps, optim.max_steps,
                                                                 optim.min_lr_ratio))
        self.engine, self.opt, _, self.sched = deepspeed.initialize(
            model=model, optimizer=opt, lr_scheduler=sched, config=config, dist_init_required=False)
        self.device = device

    def micro_step(self, batch: dict) -> float:
        loss = self.engine(**batch).loss
        self.engine.backward(loss)
        self.engine.step()  # a real optimizer step only at the accumulation boundary
        return float(loss.detach())

    def finish_step(self) -> float:
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def lr(self) -> float:
        return self.sched.get_last_lr()[0]

    def forward_loss(self, batch: dict) -> float:
        with torch.no_grad():
            return float(self.engine(**batch).loss)

    def train(self, mode: bool = True) -> None:
        self.engine.train(mode)

    def save(self, directory: Path, rank: int, state: dict) -> None:
        # collective: every rank writes its optimizer partition next to rank 0's model states
        self.engine.save_checkpoint(str(directory), tag=DS_TAG, client_state={"state": state})

    def load(self, directory: Path) -> dict:
        _, client = self.engine.load_checkpoint(str(directory), tag=DS_TAG)
        return (client or {}).get("state", {})

    def full_state_dict(self) -> dict:
        # collective under ZeRO-3 (parameters are partitioned); a local copy below it
        if self.stage == 3:
            return self.engine._zero3_consolidated_16bit_state_dict()
        return {k: v.detach().cpu() for k, v in self.engine.module.state_dict().items()}


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def make_engine(model: torch.nn.Module, optim, scaling, device: torch.device):
    """The engine ``scaling.strategy`` names."""
    cls = DeepSpeedEngine if scaling.strategy == "deepspeed" else DDPEngine
    return cls(model, optim, scaling, device)
