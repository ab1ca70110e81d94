"""ray job submit --working-dir . -- python -m lakeray.jobs.pretrain --config jobs/configs/pretrain_tiny.yaml

Pretrain a decoder-only transformer from scratch on a text column of a catalog table, on Ray
Train workers (DDP or DeepSpeed ZeRO 0-3), and register it as a new version of a catalog model.
Per-step metrics go to the run; checkpoints live under the run's artifacts. ``--resume-run
<run_id>`` continues an unfinished run from its latest checkpoint; ``--set section.key=value``
overrides config values. Prints the job id and run id at start, a line per step, and the model
version at the end.
"""

from __future__ import annotations

import argparse
import json
import sys

from lakeray.errors import LakerayError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, check the config, run the job; exit status 2 on a bad config."""
    p = argparse.ArgumentParser(prog="python -m lakeray.jobs.pretrain", description=__doc__.splitlines()[2])
    p.add_argument("--config", help="YAML job config (see jobs/configs/pretrain_tiny.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--resume-run", help="continue this unfinished run from its latest checkpoint")
    args = p.parse_args(argv)

    from lakeray.training import config as cfglib
    from lakeray.training.runner import connect_job, pretrain

    try:
        cfg = cfglib.load(cfglib.PretrainConfig, args.config, args.set)  # a bad config fails before Ray
        client, settings = connect_job()
        out = pretrain(cfg, client=client, settings=settings, resume_run=args.resume_run)
    except LakerayError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
