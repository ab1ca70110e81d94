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

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the job from the command line (see :func:`lakeray.training.runner.job_main`)."""
    from lakeray.training.finetune import finetune
    from lakeray.training.runner import job_main

    return job_main(argv, "python -m lakeray.jobs.finetune", __doc__, "FinetuneConfig", finetune)


if __name__ == "__main__":
    sys.exit(main())
