"""The ``lakeray`` command: ``up``, ``down``, ``status``, ``token``, ``whoami``, ``jobs``, ``models``."""

from __future__ import annotations

import argparse
import json
import sys

from lakeray.errors import LakerayError
from lakeray.settings import Settings


def _print(data: dict) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_up(args, settings: Settings) -> int:
    from lakeray import lifecycle

    info = lifecycle.up(settings)
    print(f"lakeray is up at {info['url']}")
    print(f"  data:        {info['home']}")
    print(f"  admin token: {info['credentials']} (mode 0600)"
          + (" - newly created" if info["new_admin_token"] else ""))
    read_token = f"python3 -c \"import json; print(json.load(open('{info['credentials']}'))['token'])\""
    print(f"  try:         TOKEN=$({read_token})")
    print(f"               curl -H \"Authorization: Bearer $TOKEN\" {info['url']}/api/2.1/unity-catalog/catalogs")
    print("  stop with:   lakeray down   (keeps every byte of data)")
    return 0


def cmd_down(args, settings: Settings) -> int:
    from lakeray import lifecycle

    info = lifecycle.down(settings, stop_ray=True if args.stop_ray else None)
    if not info.get("stopped"):
        print(f"nothing to stop: {info.get('reason')}")
        return 0
    print(f"lakeray is down; data kept in {info['home']}" + (" (Ray stopped)" if info["stopped_ray"] else ""))
    return 0


def cmd_status(args, settings: Settings) -> int:
    from lakeray import lifecycle

    _print(lifecycle.status(settings))
    return 0


def _client(args, settings: Settings):
    import lakeray

    return lakeray.connect(args.url, settings=settings)


def cmd_whoami(args, settings: Settings) -> int:
    _print(_client(args, settings).whoami())
    return 0


def cmd_token(args, settings: Settings) -> int:
    client = _client(args, settings)
    if args.action == "create":
        _print(client.create_token(principal=args.principal, lifetime_seconds=args.lifetime_seconds,
                                   comment=args.comment))
    elif args.action == "list":
        _print({"token_infos": client.list_tokens(principal=args.principal)})
    else:
        if not args.token_id:
            print("lakeray token revoke needs --token-id", file=sys.stderr)
            return 2
        client.revoke_token(args.token_id)
        print(f"revoked {args.token_id}")
    return 0


def cmd_jobs(args, settings: Settings) -> int:
    from lakeray import job_submission as js

    if args.action == "list":
        _print({"jobs": js.list_jobs(settings)})
        return 0
    if not args.target:
        print(f"lakeray jobs {args.action} needs a {'job name' if args.action == 'submit' else 'job id'}",
              file=sys.stderr)
        return 2
    if args.action == "logs":
        js.logs(settings, args.target, follow=args.follow)
        return 0
    client = _client(args, settings)
    if args.action == "stop":
        _print(js.stop(settings, client, args.target))
        return 0
    out = js.submit(settings, client, args.target, config=args.config, overrides=args.set, args=args.job_args)
    print(f"submitted job {out['job_id']}: {out['entrypoint']}")
    print(f"  follow it:  lakeray jobs logs {out['job_id']} --follow")
    if args.follow:
        js.logs(settings, out["job_id"], follow=True)
    return 0


def cmd_models(args, settings: Settings) -> int:
    from lakeray.model_registry import imports

    client = _client(args, settings)
    if args.source is None:
        if args.name:
            print("--name goes with a SOURCE; without one the offline models go to system.ai", file=sys.stderr)
            return 2
        _print({"imported": imports.import_offline(client, settings)})
    else:
        _print(imports.import_model(client, args.source, args.name))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lakeray", description="A self-hosted AI platform on Ray.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start a local Ray head (or join RAY_ADDRESS), the actors and the API")
    down = sub.add_parser("down", help="stop the platform; keeps every byte of data")
    down.add_argument("--stop-ray", action="store_true", help="also stop a Ray head lakeray did not start")
    sub.add_parser("status", help="actors, Serve apps, URL, data dir, versions")
    for name, helptext in (("whoami", "the caller of the current token"), ("token", "manage tokens")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--url", default=None, help="http://host:port (default: over Ray)")
        if name == "token":
            s.add_argument("action", choices=["create", "list", "revoke"])
            s.add_argument("--principal", default=None, help="admins: another principal")
            s.add_argument("--lifetime-seconds", type=int, default=None)
            s.add_argument("--comment", default=None)
            s.add_argument("--token-id", default=None)
    models = sub.add_parser("models", help="import foundation models into the catalog")
    models.add_argument("action", choices=["import"])
    models.add_argument("source", nargs="?", default=None,
                        help="a model directory, a .gguf file or a hub id (none: the offline models into system.ai)")
    models.add_argument("--name", default=None, help="catalog.schema.model for SOURCE")
    models.add_argument("--url", default=None, help="http://host:port (default: over Ray)")
    jobs = sub.add_parser("jobs", help="submit, list, follow and stop lakeray's jobs (Ray jobs); "
                                       "`submit <job> [options] -- <job arguments>`")
    jobs.add_argument("action", choices=["submit", "list", "logs", "stop"])
    jobs.add_argument("target", nargs="?", help="submit: the job (pretrain, ...); logs and stop: the job id")
    jobs.add_argument("--config", default=None, help="submit: the job's YAML config")
    jobs.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="submit: override a value")
    jobs.add_argument("--follow", action="store_true", help="print the job's output until it ends")
    jobs.add_argument("--url", default=None, help="http://host:port (default: over Ray)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lakeray`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # `lakeray jobs submit <job> [options] -- <the job's own arguments>`
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser().parse_args(argv[:cut])
    args.job_args = argv[cut + 1:]
    settings = Settings.from_env()
    handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "whoami": cmd_whoami,
                "token": cmd_token, "jobs": cmd_jobs, "models": cmd_models}
    try:
        return handlers[args.command](args, settings)
    except LakerayError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
