"""python -m lakeray.jobs.tune --config jobs/configs/tune_pretrain.yaml

A Ray Tune search (ASHA or FIFO scheduling, random or Optuna search) over a pretraining config.
The search is a run; each trial is a pretraining run nested under it (its own metrics,
checkpoints and model), and weak trials stop early under ASHA. The best trial's values, run and
metric are logged on the search's run and its model is registered as a new version of
``output.model``. ``--set`` overrides config values (``--set num_samples=8``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the job from the command line (see :func:`lakeray.training.runner.job_main`)."""
    from lakeray.training.runner import job_main
    from lakeray.training.search import tune

    return job_main(argv, "python -m lakeray.jobs.tune", __doc__, "TuneConfig", tune, resumable=False)


if __name__ == "__main__":
    sys.exit(main())
