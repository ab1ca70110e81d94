"""DeepSpeed's gradient bucket is sized to what it has to hold (``engine.reduce_bucket_size``)."""

from __future__ import annotations

import torch

from lakeray.training.engine import DS_REDUCE_BUCKET, reduce_bucket_size


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
