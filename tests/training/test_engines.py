"""The training engines on a real 2-worker Ray Train group: torch DDP and DeepSpeed ZeRO 0, 1, 2
and 3 each train, checkpoint, resume exactly and export the full weights (a collective under
ZeRO-3); all five agree on the losses, since they implement one optimizer recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

CONFIGS = [("ddp", 0), ("deepspeed", 0), ("deepspeed", 1), ("deepspeed", 2), ("deepspeed", 3)]


def _worker(cfg: dict) -> None:
    """For each engine: 3 steps, checkpoint, 3 more steps; then a fresh engine loads the
    checkpoint and repeats those 3 steps; rank 0 writes what it saw."""
    from pathlib import Path

    import ray.train
    import torch
    import torch.distributed as dist
    from transformers import LlamaConfig, LlamaForCausalLM

    from lakeray.training.config import Optim, Scaling
    from lakeray.training.engine import make_engine

    torch.set_num_threads(1)
    rank, world = ray.train.get_context().get_world_rank(), ray.train.get_context().get_world_size()
    model_config = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16,
                               tie_word_embeddings=True)
    gen = torch.Generator().manual_seed(1)
    # one batch per rank, seen every step: the loss must fall as the model memorises it
    batch = torch.randint(0, 300, (2, world, 2, 16), generator=gen)  # micro-step, rank, sequence, token
    optim = Optim(lr=1e-2, warmup_steps=1, max_steps=6, batch_size=2, grad_accum=2)
    out = {}
    for strategy, stage in cfg["configs"]:
        name = f"{strategy}-{stage}"
        scaling = Scaling(num_workers=world, strategy=strategy, zero_stage=stage, precision="fp32")

        def fresh(scaling=scaling):
            torch.manual_seed(0)
            return make_engine(LlamaForCausalLM(model_config), optim, scaling, torch.device("cpu"))

        def steps(engine) -> list[float]:
            losses = []
            for _ in range(3):
                micro = [engine.micro_step({"input_ids": b, "labels": b}) for b in batch[:, rank]]
                engine.finish_step()
                losses.append(sum(micro) / len(micro))
            return losses

        engine = fresh()
        engine.train(True)
        before = steps(engine)
        ckpt = Path(cfg["dir"]) / name
        ckpt.mkdir(parents=True, exist_ok=True)
        dist.barrier()
        engine.save(ckpt, rank, {"step": 3})
        dist.barrier()
        after = steps(engine)
        lr_after = engine.lr()
        full = engine.full_state_dict()  # collective under ZeRO-3

        again = fresh()
        again.train(True)
        state = again.load(ckpt)
        resumed = steps(again)
        if rank == 0:
            reference = LlamaForCausalLM(model_config).state_dict()
            out[name] = {
                "before": before, "after": after, "resumed": resumed, "state": state,
                "lr_after": lr_after, "lr_resumed": again.lr(),
                "missing": sorted(set(reference) - set(full)),
                "bad_shapes": sorted(k for k, v in full.items() if k in reference and v.shape != reference[k].shape),
                "finite": all(bool(torch.isfinite(v.float()).all()) for v in full.values()),
            }
        dist.barrier()
    if rank == 0:
        Path(cfg["dir"], "results.json").write_text(json.dumps(out))


def train(out: str) -> None:
    """Run every engine on a 2-worker Ray Train group of the cluster this process joins."""
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    # run as a script: _worker lives in __main__, which is pickled by value (workers cannot import tests/)
    ray.init(address="auto", namespace="lakeray", log_to_driver=False, logging_level="ERROR")
    trainer = TorchTrainer(
        _worker, train_loop_config={"configs": CONFIGS, "dir": out},
        scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=ray.train.RunConfig(name="engines", storage_path=str(Path(out) / "ray"),
                                       failure_config=ray.train.FailureConfig(max_failures=0),
                                       worker_runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}}))
    result = trainer.fit()
    assert result.error is None, result.error


@pytest.fixture(scope="module")
def results(platform, tmp_path_factory):
    """The engines' runs, driven from a process of their own: a Ray driver whose cluster goes away
    exits on the spot, and that must not take the test session with it."""
    out = tmp_path_factory.mktemp("engines")
    done = subprocess.run([sys.executable, __file__, str(out)], env=platform.env, cwd=Path(__file__).parent,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("strategy, stage", CONFIGS)
def test_engine_trains_checkpoints_resumes_and_exports(results, strategy, stage):
    r = results[f"{strategy}-{stage}"]
    assert r["before"][-1] < r["before"][0] and r["after"][-1] < r["before"][-1]  # it learns
    assert r["state"] == {"step": 3}
    # a fresh engine loaded from the checkpoint takes the very same steps
    assert r["resumed"] == pytest.approx(r["after"], rel=1e-4)
    assert r["lr_resumed"] == pytest.approx(r["lr_after"])
    # the export is the whole model, every tensor at full shape (ZeRO-3 gathers its partitions)
    assert r["missing"] == [] and r["bad_shapes"] == [] and r["finite"]


def test_every_engine_follows_the_same_recipe(results):
    reference = results["ddp-0"]["before"] + results["ddp-0"]["after"]
    for name, r in results.items():
        assert r["before"] + r["after"] == pytest.approx(reference, rel=2e-3), name


if __name__ == "__main__":
    train(sys.argv[1])
