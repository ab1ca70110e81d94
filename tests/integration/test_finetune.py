"""lakeray.jobs.finetune as a real job: LoRA on 2 workers with DeepSpeed ZeRO-2 over a chat
table, the base model's EXECUTE and the table's SELECT checked before any worker starts, the
result registered with lineage base version -> run -> new version."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from tests.conftest import REPO

pytestmark = pytest.mark.ray
DOCS, CHAT, BASE = "main.default.ft_docs", "main.default.ft_chat", "main.default.ft_base"


@pytest.fixture(scope="module")
def base(platform):
    """A chat table and a small base model of our own (pretrained here, a few steps)."""
    from lakeray.jobs import build_chat
    from lakeray.jobs.load_corpus import load

    c = platform.client("ray")
    load(c, DOCS)
    build_chat.build(c, DOCS, CHAT, max_packages=40)
    out = run(platform, "pretrain", "jobs/configs/pretrain_tiny.yaml", f"data.table={DOCS}", "optim.max_steps=4",
              "schedule.eval_every=4", "schedule.checkpoint_every=4", f"output.model={BASE}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return BASE


def run(platform, job: str, config: str, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", f"lakeray.jobs.{job}", "--config", config]
    for o in overrides:
        args += ["--set", o]
    return subprocess.run(args, env=env or platform.env, cwd=REPO, capture_output=True, text=True, timeout=900)


FT = ("jobs/configs/finetune_smollm2_lora.yaml", f"base_model.name={BASE}", f"data.table={CHAT}",
      "optim.max_steps=4", "schedule.eval_every=2", "schedule.checkpoint_every=2", "max_length=192")


def test_lora_finetune_registers_a_merged_model(platform, base, tmp_path):
    model = f"main.default.ft_{uuid.uuid4().hex[:6]}"
    out = run(platform, "finetune", *FT, f"output.model={model}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["model"] == model and result["version"] == 1
    c = platform.client("ray")
    run_ = c.get_run(result["run_id"])
    params = {p["key"]: p["value"] for p in run_["data"]["params"]}
    assert params["lora.r"] == "8" and params["base_model.resolved_version"] == "1"
    assert len(c.get_metric_history(result["run_id"], "loss")) == 4
    assert c.get_metric_history(result["run_id"], "eval_loss")
    edges = c.get_lineage("model_version", f"{model}/1", depth=2)["edges"]
    sources = {(e["source"]["type"], e["source"]["name"]) for e in edges}
    assert {("run", result["run_id"]), ("table", CHAT), ("model_version", f"{BASE}/1")} <= sources

    # merged: a plain transformers model (no adapter files) that loads and chats
    import os

    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ["MLFLOW_TRACKING_TOKEN"] = platform.token
    mlflow.set_tracking_uri(platform.url)
    local = mlflow.artifacts.download_artifacts(f"models:/{model}/1", dst_path=str(tmp_path))
    files = os.listdir(local)
    assert "model.safetensors" in files and "adapter_config.json" not in files
    tok = AutoTokenizer.from_pretrained(local)
    net = AutoModelForCausalLM.from_pretrained(local)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is ray?"}], add_generation_prompt=True,
                                     return_tensors="pt")
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    assert net.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4


def test_adapters_can_be_kept_apart(platform, base):
    out = run(platform, "finetune", *FT, "lora.merge=false", "output.model=null", "optim.max_steps=2",
              "schedule.eval_every=100")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
    import requests

    listing = requests.get(f"{platform.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "model"},
                           headers={"Authorization": f"Bearer {platform.token}"}, timeout=30).json()
    names = {f["path"].rsplit("/", 1)[-1] for f in listing["files"]}
    assert {"adapter_config.json", "adapter_model.safetensors", "MLmodel"} <= names
    assert "model.safetensors" not in names


@pytest.mark.parametrize("overrides, message", [
    (["base_model.name=main.default.no_such_model"], "base_model main.default.no_such_model does not exist"),
    ([f"base_model.name={BASE}", "base_model.version=99"], f"base_model {BASE} version 99 does not exist"),
    (["data.column=package"], "data.column 'package' of main.default.ft_chat is string, not a list"),
    (["lora.r=0"], "lora.r"),
    (["base_model.version=1", "base_model.alias=default"], "not both"),
])
def test_bad_finetune_configs_fail_first(platform, base, overrides, message):
    out = run(platform, "finetune", *FT, *overrides)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert message in out.stderr
    assert "step 1/" not in out.stdout


def test_no_execute_on_the_base_model_is_refused_up_front(platform, base):
    admin = platform.client("ray")
    name = f"tuner_{uuid.uuid4().hex[:6]}"
    admin.create_principal(name)
    admin.grant("catalog", "main", name, "USE CATALOG")
    admin.grant("schema", "main.default", name, "USE SCHEMA", "CREATE MODEL")
    admin.grant("table", CHAT, name, "SELECT")
    token = admin.create_token(principal=name)["token_value"]
    out = run(platform, "finetune", *FT, env={**platform.env, "LAKERAY_TOKEN": token})
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"base_model {BASE}" in out.stderr and "EXECUTE" in out.stderr
