"""Job configs for pretraining and fine-tuning: YAML files validated into pydantic models.

A bad config fails here, with a message naming the field, before any Ray worker starts.
Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakeray.errors import InvalidArgument

#: Llama-style sizes (``preset:`` in the YAML); ``nano`` is nanoGPT's CPU recipe.
PRESETS: dict[str, dict] = {
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64, "vocab_size": 512},
    "nano": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "vocab_size": 2048},
    "small": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "vocab_size": 8192},
    "base": {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "vocab_size": 32000},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _three_part(value: str, what: str) -> str:
    parts = value.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{what} must be a catalog.schema.name full name, got {value!r}")
    return value


class ModelSize(_Strict):
    """A decoder-only transformer's shape (a preset, optionally overridden field by field)."""

    preset: Literal["tiny", "nano", "small", "base"] | None = "tiny"
    n_layer: int | None = Field(None, ge=1, le=128)
    n_head: int | None = Field(None, ge=1, le=128)
    n_embd: int | None = Field(None, ge=8, le=16384)
    block_size: int | None = Field(None, ge=8, le=32768)
    vocab_size: int | None = Field(None, ge=260, le=262144)  # 256 bytes + special tokens at least
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    def resolved(self) -> dict:
        """The preset with the explicit fields on top."""
        base = dict(PRESETS[self.preset]) if self.preset else {}
        for key in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            if getattr(self, key) is not None:
                base[key] = getattr(self, key)
        missing = [k for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size") if k not in base]
        if missing:
            raise InvalidArgument(f"model: give a preset or all of {', '.join(missing)}")
        if base["n_embd"] % base["n_head"]:
            raise InvalidArgument(f"model: n_embd ({base['n_embd']}) must be divisible by n_head ({base['n_head']})")
        return {**base, "dropout": self.dropout}


class Data(_Strict):
    """Where the text comes from: a catalog table and its column."""

    table: str
    column: str = "text"
    eval_fraction: float = Field(0.05, gt=0.0, lt=0.5)
    max_rows: int | None = Field(None, ge=1)

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        return _three_part(v, "data.table")


class Optim(_Strict):
    """AdamW with linear warmup then cosine decay, gradient accumulation and clipping."""

    lr: float = Field(3e-4, gt=0.0, le=1.0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(0.1, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = Field(10, ge=0)
    max_steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1, description="sequences per worker per micro-step")
    grad_accum: int = Field(1, ge=1, le=1024)
    grad_clip: float = Field(1.0, gt=0.0)

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("optim.betas must both be in [0, 1)")
        return v


class Scaling(_Strict):
    """How many workers, and how the model is spread over them."""

    num_workers: int = Field(1, ge=1, le=1024)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0.0)
    strategy: Literal["ddp", "deepspeed"] = "deepspeed"
    zero_stage: int = 2
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    max_failures: int = Field(2, ge=0, le=100, description="automatic restarts after a worker dies")

    @field_validator("zero_stage")
    @classmethod
    def _zero(cls, v: int) -> int:
        if v not in (0, 1, 2, 3):
            raise ValueError(f"scaling.zero_stage must be 0, 1, 2 or 3 (DeepSpeed ZeRO stages), got {v}")
        return v


class Schedule(_Strict):
    """How often to log, evaluate and checkpoint."""

    log_every: int = Field(1, ge=1)
    eval_every: int = Field(50, ge=1)
    eval_batches: int = Field(8, ge=1)
    checkpoint_every: int = Field(50, ge=1)
    keep_checkpoints: int = Field(2, ge=1)


class Output(_Strict):
    """Where results go: the experiment of the run and the catalog model of the new version."""

    experiment: str = "/lakeray/training"
    model: str | None = None
    run_name: str | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        return None if v is None else _three_part(v, "output.model")


class PretrainConfig(_Strict):
    """``lakeray.jobs.pretrain``: a model trained from scratch on a text column."""

    model: ModelSize = ModelSize()
    data: Data
    optim: Optim = Optim()
    scaling: Scaling = Scaling()
    schedule: Schedule = Schedule()
    output: Output = Output()
    tokenizer_sample_rows: int = Field(20000, ge=1, description="rows the BPE tokenizer is trained on")
    seed: int = 0

    @model_validator(mode="after")
    def _shape(self) -> PretrainConfig:
        try:
            self.model.resolved()
        except InvalidArgument as e:
            raise ValueError(e.message) from None
        return self


class BaseModelRef(_Strict):
    """A catalog model version to start from: by ``version``, by ``alias``, or the latest."""

    name: str
    version: int | None = Field(None, ge=1)
    alias: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _three_part(v, "base_model.name")

    @model_validator(mode="after")
    def _one(self) -> BaseModelRef:
        if self.version is not None and self.alias is not None:
            raise ValueError("give base_model.version or base_model.alias, not both")
        return self


class Lora(_Strict):
    """Low-rank adapters (peft) instead of full fine-tuning."""

    enabled: bool = True
    r: int = Field(8, ge=1, le=1024)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"
    merge: bool = Field(True, description="merge the adapters into the weights (else keep them apart)")


class ChatData(_Strict):
    """Conversations in OpenAI's format: a column of ``[{role, content}]`` lists."""

    table: str
    column: str = "messages"
    eval_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    max_rows: int | None = Field(None, ge=1)

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        return _three_part(v, "data.table")


class FinetuneConfig(_Strict):
    """``lakeray.jobs.finetune``: supervised fine-tuning of a catalog model on a chat table, with
    the loss on the assistant's tokens only."""

    base_model: BaseModelRef
    data: ChatData
    lora: Lora = Lora()
    max_length: int = Field(256, ge=16, le=32768)
    optim: Optim = Optim(lr=2e-4, warmup_steps=2, max_steps=20, batch_size=2, weight_decay=0.0)
    scaling: Scaling = Scaling()
    schedule: Schedule = Schedule()
    output: Output = Output(experiment="/lakeray/finetune")
    seed: int = 0


class Dimension(_Strict):
    """One searched value: exactly one of the distributions."""

    choice: list | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _one(self) -> Dimension:
        given = [k for k in ("choice", "uniform", "loguniform", "randint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, uniform, loguniform, randint")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        for key in ("uniform", "loguniform", "randint"):
            low_high = getattr(self, key)
            if low_high is not None and not low_high[0] < low_high[1]:
                raise ValueError(f"{key} needs low < high, got {list(low_high)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform needs low > 0")
        return self


class TuneConfig(_Strict):
    """``lakeray.jobs.tune``: a Ray Tune search over a pretraining config; each trial is a run
    nested under the search's run, and the best trial's model is registered."""

    base: dict = Field(..., description="the pretraining config every trial starts from")
    space: dict[str, Dimension] = Field(..., description="dotted config key -> distribution")
    num_samples: int = Field(4, ge=1, le=10000)
    scheduler: Literal["asha", "fifo"] = "asha"
    search: Literal["random", "optuna"] = "random"
    metric: str = "eval_loss"
    mode: Literal["min", "max"] = "min"
    grace_period: int = Field(1, ge=1, description="ASHA: reports (checkpoints) before a trial may stop")
    max_concurrent_trials: int = Field(1, ge=1)
    output: Output = Output(experiment="/lakeray/tune")
    seed: int = 0

    @model_validator(mode="after")
    def _trials(self) -> TuneConfig:
        if not self.space:
            raise ValueError("space: give at least one dimension to search")
        import copy

        for key in self.space:
            try:
                _set(copy.deepcopy(self.base), key, None)
            except InvalidArgument as e:
                raise ValueError(f"space.{key}: {e.message}") from None
        # every trial's config must be valid: check the base with each dimension's first value
        try:
            self.trial_config({k: _example(d) for k, d in self.space.items()})
        except InvalidArgument as e:
            raise ValueError(e.message) from None
        return self

    def trial_config(self, values: dict) -> PretrainConfig:
        """The pretraining config of a trial: the base with the trial's values set (each trial
        registers nothing itself; the search registers the best)."""
        import copy

        raw = copy.deepcopy(self.base)
        for key, value in values.items():
            _set(raw, key, value)
        _set(raw, "output.model", None)
        return parse(PretrainConfig, raw)


def _example(d: Dimension):
    if d.choice is not None:
        return d.choice[0]
    low, _ = d.uniform or d.loguniform or d.randint
    return low


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "config"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _set(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise InvalidArgument(f"--set {dotted}: {key} is not a section")
        tree = node
    tree[keys[-1]] = value


def parse(cls: type[BaseModel], raw: dict):
    """Validate a config dict into ``cls``; InvalidArgument names every bad field."""
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        raise InvalidArgument(f"bad {cls.__name__}: {_describe(e)}") from None


def load(cls: type[BaseModel], path: str | Path | None = None, overrides: list[str] | None = None):
    """Read a YAML config (optional) with ``key.sub=value`` overrides (values are YAML) into ``cls``."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InvalidArgument(f"config file {p} does not exist")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise InvalidArgument(f"config file {p} is not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise InvalidArgument(f"config file {p} must hold a mapping at the top level")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"override {item!r} must look like section.key=value")
        _set(raw, key.strip(), yaml.safe_load(value))
    return parse(cls, raw)
