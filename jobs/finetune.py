"""lakeray jobs submit finetune --config jobs/configs/finetune_smollm2_lora.yaml

Supervised fine-tuning of a catalog model (e.g. ``system.ai.smollm2_135m_instruct``) on a chat
table (a ``messages`` column in OpenAI's format) with the model's chat template and the loss on
the assistant's tokens only; full or LoRA (adapters merged or kept), on Ray Train workers (DDP
or DeepSpeed ZeRO), registered as a new version of ``output.model`` with lineage base model
version -> run and table -> run -> model version. EXECUTE on the base model and SELECT on the
table are checked before any worker starts. Also runs as
``ray job submit --working-dir . -- python -m lakeray.jobs.finetune --config <yaml>``.
"""

from __future__ import annotations

import argparse
import json
import sys

from lakeray.errors import LakerayError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check the config, run the job; exit status 2 on a bad config."""
    p = argparse.ArgumentParser(prog="python -m lakeray.jobs.finetune", description=__doc__.splitlines()[2])
    p.add_argument("--config", help="YAML job config (see jobs/configs/finetune_smollm2_lora.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--resume-run", help="continue this unfinished run from its latest checkpoint")
    args = p.parse_args(argv)

    from lakeray.training import config as cfglib
    from lakeray.training.finetune import finetune
    from lakeray.training.runner import connect_job

    try:
        cfg = cfglib.load(cfglib.FinetuneConfig, args.config, args.set)  # a bad config fails before Ray
        client, settings = connect_job()
        out = finetune(cfg, client=client, settings=settings, resume_run=args.resume_run)
    except LakerayError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
