"""`lakeray models import`: SmolLM2 (from the GGUF in its PyPI wheel) and all-MiniLM-L6-v2 into
system.ai, loadable from their versions; a second import changes nothing; bad sources are clear
errors; and a LoRA fine-tune of SmolLM2 on a chat table runs a few steps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.conftest import REPO

pytestmark = pytest.mark.ray
SMOL, MINILM = "system.ai.smollm2_135m_instruct", "system.ai.all_minilm_l6_v2"


def report(out) -> dict:
    """The JSON the command prints after its progress lines."""
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(out.stdout[out.stdout.index("\n{") + 1:] if not out.stdout.startswith("{") else out.stdout)


@pytest.fixture(scope="module")
def imported(platform):
    return report(platform.cli("models", "import", timeout=900))["imported"]


def version_dir(platform, name: str):
    from lakeray.tracking.artifacts import ArtifactStore

    info = platform.client("ray").get_model_version_by_alias(name, "default")
    return ArtifactStore(platform.settings.artifact_root).location_path(info["storage_location"])


def test_both_offline_models_are_in_system_ai(platform, imported):
    assert {m["model"] for m in imported} == {SMOL, MINILM} and all(m["imported"] for m in imported)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    smol = version_dir(platform, SMOL)
    assert "kind: chat" in (smol / "MLmodel").read_text() and (smol / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(smol)
    net = AutoModelForCausalLM.from_pretrained(smol)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France? Answer in one "
                                                                  "sentence."}], add_generation_prompt=True,
                                     return_tensors="pt")
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    answer = tok.decode(net.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1]:])
    assert "Paris" in answer

    from sentence_transformers import SentenceTransformer

    minilm = version_dir(platform, MINILM)
    assert "kind: embedding" in (minilm / "MLmodel").read_text()
    assert SentenceTransformer(str(minilm)).encode(["lakeray on Ray"]).shape == (1, 384)

    again = report(platform.cli("models", "import", timeout=600))
    assert not any(m["imported"] for m in again["imported"])
    assert [v["version"] for v in platform.client("ray").list_model_versions(SMOL)["model_versions"]] == [1]


def test_bad_sources_are_clear_errors(platform, tmp_path):
    missing = platform.cli("models", "import", str(tmp_path / "nope.gguf"), "--name", "main.default.x")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = platform.cli("models", "import", str(tmp_path / "empty"), "--name", "main.default.x")
    assert empty.returncode == 1 and "no config.json" in empty.stderr
    hub = platform.cli("models", "import", "HuggingFaceTB/SmolLM2-135M-Instruct", "--name", "main.default.x")
    assert hub.returncode == 1 and "pass a local model directory" in hub.stderr
    unnamed = platform.cli("models", "import", str(tmp_path / "empty"))
    assert unnamed.returncode == 1 and "--name catalog.schema.model" in unnamed.stderr


def test_lora_finetune_of_smollm2(platform, imported):
    from lakeray.jobs import build_chat
    from lakeray.jobs.load_corpus import load

    c = platform.client("ray")
    load(c, "main.default.smol_docs")
    build_chat.build(c, "main.default.smol_docs", "main.default.smol_chat", max_packages=30)
    args = [sys.executable, "-m", "lakeray.jobs.finetune", "--config", "jobs/configs/finetune_smollm2_lora.yaml"]
    for o in ("data.table=main.default.smol_chat", "optim.max_steps=3", "optim.grad_accum=1",
              "schedule.eval_every=3", "schedule.eval_batches=1", "schedule.checkpoint_every=3",
              "max_length=160", "output.model=main.default.smollm2_packages_test"):
        args += ["--set", o]
    out = subprocess.run(args, env=platform.env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["version"] == 1 and len(c.get_metric_history(result["run_id"], "loss")) == 3
    edges = c.get_lineage("model_version", "main.default.smollm2_packages_test/1", depth=2)["edges"]
    assert ("model_version", f"{SMOL}/1") in {(e["source"]["type"], e["source"]["name"]) for e in edges}
