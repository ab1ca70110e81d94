"""The DeepSpeed config a job gets (``engine.deepspeed_config``): the job's settings, and ZeRO's
communication fitted to the model (the gradient bucket) and the device (reduce-scatter on GPUs)."""

from __future__ import annotations

import torch

from lakeray.training.config import Optim, Scaling
from lakeray.training.engine import DS_REDUCE_BUCKET, deepspeed_config, reduce_bucket_size


def test_a_small_model_gets_a_bucket_of_its_trainable_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    assert reduce_bucket_size(model) == 8 * 4 + 4 + 4 * 2 + 2


def test_frozen_parameters_take_no_room_in_the_bucket():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)  # as LoRA freezes the base model
    assert reduce_bucket_size(model) == 4 * 2 + 2


def test_a_large_model_keeps_deepspeeds_default_bucket():
    model = torch.nn.Linear(1, 1)
    model.weight = torch.nn.Parameter(torch.empty(DS_REDUCE_BUCKET + 1, device="meta"))
    assert reduce_bucket_size(model) == DS_REDUCE_BUCKET


def test_the_config_carries_the_jobs_settings_and_fits_zero_to_model_and_device():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    optim = Optim(batch_size=4, grad_accum=3, grad_clip=0.5)
    scaling = Scaling(num_workers=2, strategy="deepspeed", zero_stage=2, precision="bf16")
    cpu = deepspeed_config(model, optim, scaling, torch.device("cpu"))
    assert (cpu["train_micro_batch_size_per_gpu"], cpu["gradient_accumulation_steps"], cpu["gradient_clipping"]) \
        == (4, 3, 0.5)
    assert cpu["bf16"] == {"enabled": True}
    assert cpu["zero_optimization"] == {"stage": 2, "reduce_bucket_size": 46, "reduce_scatter": False}
    gpu = deepspeed_config(model, optim, scaling, torch.device("cuda", 0))
    assert gpu["zero_optimization"]["reduce_scatter"] is True
