"""ray job submit --working-dir . -- python -m lakeray.jobs.pretrain --config jobs/configs/pretrain_tiny.yaml

Pretrain a decoder-only transformer from scratch on a text column of a catalog table, on Ray
Train workers (DDP or DeepSpeed ZeRO 0-3), and register it as a new version of a catalog model.
Per-step metrics go to the run; checkpoints live under the run's artifacts. ``--resume-run
<run_id>`` continues an unfinished run from its latest checkpoint; ``--set section.key=value``
overrides config values. Prints the job id and run id at start, a line per step, and the model
version at the end.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the job from the command line (see :func:`lakeray.training.runner.job_main`)."""
    from lakeray.training.runner import job_main, pretrain

    return job_main(argv, "python -m lakeray.jobs.pretrain", __doc__, "PretrainConfig", pretrain)


if __name__ == "__main__":
    sys.exit(main())
