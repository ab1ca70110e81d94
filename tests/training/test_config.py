"""Job configs: YAML and overrides validated into pydantic models, every bad field named."""

from __future__ import annotations

import pytest
from tests.conftest import REPO

from lakeray.errors import InvalidArgument
from lakeray.training import config as cfglib
from lakeray.training.config import PretrainConfig

BASE = ["data.table=main.default.docs"]


def load(*overrides: str, path=None) -> PretrainConfig:
    return cfglib.load(PretrainConfig, path, [*BASE, *overrides])


def test_the_shipped_config_loads_and_overrides_apply():
    cfg = cfglib.load(PretrainConfig, REPO / "jobs/configs/pretrain_tiny.yaml",
                      ["optim.max_steps=7", "scaling.zero_stage=3", "model.n_layer=3"])
    assert cfg.optim.max_steps == 7 and cfg.scaling.zero_stage == 3
    size = cfg.model.resolved()
    assert size["n_layer"] == 3 and size["n_embd"] == 64  # the preset, with the override on top
    assert cfg.scaling.strategy == "deepspeed" and cfg.output.model == "main.default.tiny_lm"


@pytest.mark.parametrize("override, message", [
    ("scaling.zero_stage=4", "scaling.zero_stage: scaling.zero_stage must be 0, 1, 2 or 3"),
    ("optim.lr=-0.1", "optim.lr: Input should be greater than 0"),
    ("optim.max_steps=0", "optim.max_steps"),
    ("scaling.strategy=fsdp", "scaling.strategy"),
    ("optim.betas=[0.9, 1.5]", "optim.betas must both be in [0, 1)"),
    ("optim.lr_warmup=3", "optim.lr_warmup: unknown key"),
    ("data.table=docs", "data.table must be a catalog.schema.name full name"),
    ("output.model=a.b", "output.model must be a catalog.schema.name full name"),
    ("model.n_head=3", "n_embd (64) must be divisible by n_head (3)"),
    ("model.preset=huge", "model.preset"),
])
def test_bad_configs_name_the_field(override, message):
    with pytest.raises(InvalidArgument) as err:
        load(override)
    assert message in err.value.message


def test_missing_table_and_bad_files(tmp_path):
    with pytest.raises(InvalidArgument, match="data: Field required"):
        cfglib.load(PretrainConfig, None, [])
    with pytest.raises(InvalidArgument, match="does not exist"):
        cfglib.load(PretrainConfig, tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed")
    with pytest.raises(InvalidArgument, match="not valid YAML"):
        cfglib.load(PretrainConfig, tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InvalidArgument, match="mapping at the top level"):
        cfglib.load(PretrainConfig, tmp_path / "list.yaml")
    with pytest.raises(InvalidArgument, match="must look like section.key=value"):
        load("no-equals-sign")
    with pytest.raises(InvalidArgument, match="is not a section"):
        load("seed=1", "seed.x=2")


def test_a_model_without_preset_needs_every_dimension():
    with pytest.raises(InvalidArgument, match="give a preset or all of"):
        load("model.preset=null", "model.n_layer=2")
    cfg = load("model.preset=null", "model.n_layer=2", "model.n_head=2", "model.n_embd=32", "model.block_size=16",
               "model.vocab_size=300")
    assert cfg.model.resolved()["vocab_size"] == 300


def test_tune_config_checks_the_space_and_every_trial():
    from lakeray.training.config import TuneConfig

    cfg = cfglib.load(TuneConfig, REPO / "jobs/configs/tune_pretrain.yaml")
    trial = cfg.trial_config({"optim.lr": 0.002, "optim.warmup_steps": 2})
    assert trial.optim.lr == 0.002 and trial.output.model is None  # trials register nothing themselves
    assert trial.scaling.zero_stage == 2
    bad = [
        ("space={}", "give at least one dimension"),
        # the whole space at once: its keys are dotted config paths themselves
        ("space={optim.lr: {uniform: [0.1, 0.01]}}", "uniform needs low < high"),
        ("space={optim.lr: {loguniform: [0, 0.01]}}", "loguniform needs low > 0"),
        ("space={optim.lr: {choice: [0.1], uniform: [0, 1]}}", "give exactly one of"),
        ("space={optim.lr: {choice: [-1]}}", "optim.lr: Input should be greater than 0"),
        ("space={seed.x: {choice: [1]}}", "seed: Input should be a valid integer"),
        ("num_samples=0", "num_samples"),
        ("scheduler=hyperband", "scheduler"),
        ("base.scaling.zero_stage=9", "zero_stage must be 0, 1, 2 or 3"),
    ]
    for override, message in bad:
        with pytest.raises(InvalidArgument) as err:
            cfglib.load(TuneConfig, REPO / "jobs/configs/tune_pretrain.yaml", [override])
        assert message in err.value.message, (override, err.value.message)
