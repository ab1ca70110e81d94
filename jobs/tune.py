"""python -m lakeray.jobs.tune --config jobs/configs/tune_pretrain.yaml

A Ray Tune search (ASHA or FIFO scheduling, random or Optuna search) over a pretraining config.
The search is a run; each trial is a pretraining run nested under it (its own metrics,
checkpoints and model), and weak trials stop early under ASHA. The best trial's values, run and
metric are logged on the search's run and its model is registered as a new version of
``output.model``. ``--set`` overrides config values (``--set num_samples=8``).
"""

from __future__ import annotations

import argparse
import json
import sys

from lakeray.errors import LakerayError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check the config, run the search; exit status 2 on a bad config."""
    p = argparse.ArgumentParser(prog="python -m lakeray.jobs.tune", description=__doc__.splitlines()[2])
    p.add_argument("--config", help="YAML search config (see jobs/configs/tune_pretrain.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    args = p.parse_args(argv)

    from lakeray.training import config as cfglib
    from lakeray.training.runner import connect_job
    from lakeray.training.search import tune

    try:
        cfg = cfglib.load(cfglib.TuneConfig, args.config, args.set)  # a bad config fails before Ray
        client, settings = connect_job()
        out = tune(cfg, client, settings)
    except LakerayError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
