"""The `bpm` command: serve, migrate, manage users and tokens, deploy, and start the worker processes."""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
from pathlib import Path

from bpm.adapters.db import migrate
from bpm.config import Settings
from bpm.services import identity

PROCESSES_DIR = Path(__file__).resolve().parent.parent / "processes"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["worker"], ["beat"]) and argv[1:2] not in (["-h"], ["--help"]):
        # Celery's own options (`bpm worker --concurrency=4 -n w1@%h`) pass through untouched.
        return _celery(argv[0])(argparse.Namespace(extra=argv[1:])) or 0
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return args.handler(args) or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bpm", description="BPMN process server for customer operations")
    commands = parser.add_subparsers(metavar="command")

    serve = commands.add_parser("serve", help="run the API server (embedded worker when no broker is set)")
    serve.add_argument("--seed-demo", action="store_true", help="create demo users, tokens and data")
    serve.add_argument("--workers", type=int, default=None, help="HTTP worker processes")
    serve.set_defaults(handler=_serve)

    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(handler=_migrate)

    user = commands.add_parser("user", help="create a user").add_subparsers(metavar="action")
    create = user.add_parser("create", help="create a user")
    create.add_argument("username")
    create.add_argument("--display-name", default="")
    create.add_argument("--email")
    create.add_argument("--roles", default="", help="comma-separated: admin,designer,approver,integrator")
    create.add_argument("--groups", default="", help="comma-separated group names")
    create.add_argument("--supervisor")
    create.set_defaults(handler=_create_user)

    group = commands.add_parser("group", help="create a group").add_subparsers(metavar="action")
    group_create = group.add_parser("create")
    group_create.add_argument("name")
    group_create.add_argument("--display-name", default="")
    group_create.set_defaults(handler=_create_group)

    token = commands.add_parser("token", help="issue an API token").add_subparsers(metavar="action")
    token_create = token.add_parser("create")
    token_create.add_argument("username")
    token_create.add_argument("--name", default="cli")
    token_create.add_argument("--scopes", default=None, help="comma-separated scopes (default: unrestricted)")
    token_create.set_defaults(handler=_create_token)

    deploy = commands.add_parser("deploy", help="deploy BPMN files")
    deploy.add_argument("files", nargs="+")
    deploy.set_defaults(handler=_deploy)

    commands.add_parser("seed-demo", help="create demo users and data").set_defaults(handler=_seed_demo)
    for name in ("worker", "beat"):
        production = commands.add_parser(name, help=f"run the Celery {name} (needs BPM_BROKER_URL)")
        production.add_argument("extra", nargs=argparse.REMAINDER)
        production.set_defaults(handler=_celery(name))
    _plugin_commands(commands)
    return parser


def _plugin_commands(commands) -> None:
    """Feature packages may add sub-commands with `register_commands(subparsers)` (simulate, ...)."""
    for module_name in ("api.cli_extra",):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        module.register_commands(commands)


def _context():
    from api.context import ServerContext

    settings = Settings.from_env()
    migrate(settings.database_url)
    return ServerContext.build(settings)


def _migrate(_args) -> int:
    migrate(Settings.from_env().database_url)
    print("schema is up to date")
    return 0


def _create_user(args) -> int:
    context = _context()
    command = identity.CreateUser(args.username, args.display_name, args.email, _split(args.groups),
                                  _split(args.roles), args.supervisor)
    identity.create_user(command, context.uow())
    print(f"created user {args.username}")
    return 0


def _create_group(args) -> int:
    identity.create_group(args.name, args.display_name, _context().uow())
    print(f"created group {args.name}")
    return 0


def _create_token(args) -> int:
    scopes = _split(args.scopes) if args.scopes is not None else None
    _, token = identity.issue_token(identity.IssueToken(args.username, args.name, scopes), _context().uow())
    print(token)
    return 0


def _deploy(args) -> int:
    from bpm.domain.errors import DeploymentRejected
    from bpm.services import definitions

    context = _context()
    failed = 0
    for name in args.files:
        try:
            rows = definitions.deploy(definitions.DeployBpmn(Path(name).read_bytes(), name, "cli"), context.uow())
            print(", ".join(f"{name}: {row.key} v{row.version}" for row in rows))
        except DeploymentRejected as error:
            failed += 1
            print(f"{name}: rejected: {error.detail}", file=sys.stderr)
    return 1 if failed else 0


def _seed_demo(_args) -> int:
    from api import demo

    demo.seed(_context(), PROCESSES_DIR, announce=print)
    return 0


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _celery(kind: str):
    def run(args) -> int:
        from workers import celery_app

        return celery_app.run_command(kind, args.extra)

    return run


# --- serve ---------------------------------------------------------------------------------------------------------


def _serve(args) -> int:
    from api import demo

    context = _context()
    settings = context.settings
    if settings.bootstrap_admin_token and identity.bootstrap_admin(settings.bootstrap_admin_token, context.uow()):
        print("created user 'admin' with the token from BPM_BOOTSTRAP_ADMIN_TOKEN")
    demo.deploy_shipped_processes(context, PROCESSES_DIR, announce=print)
    if args.seed_demo:
        demo.seed(context, PROCESSES_DIR, announce=print)
    context.engine.dispose()
    workers = args.workers or (1 if settings.embedded else web_workers(os.environ.get("BPM_WEB_WORKERS")))
    print(f"serving on http://{settings.host}:{settings.port}  (API docs: /api/docs, "
          f"{'embedded worker and scheduler' if settings.embedded else 'broker ' + settings.broker_url})",
          flush=True)
    return _http_server(settings, workers)


def web_workers(configured: str | None = None) -> int:
    """HTTP worker processes of `bpm serve`: BPM_WEB_WORKERS when set, else one per CPU this process may run on,
    and at least two. More processes than cores only add context switches and cold caches: on 2 cores, 2 workers
    served 1.08x the instances/s of 4 on 0.87-0.89x the server CPU per instance (BENCHMARKS.md, "Engine floor vs
    server", fifteenth round)."""
    if configured and configured.strip():
        if not configured.strip().isdigit() or int(configured) < 1:
            raise SystemExit(f"BPM_WEB_WORKERS must be a whole number of processes, 1 or more; got {configured!r}")
        return int(configured)
    return max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2)


def _http_server(settings: Settings, workers: int) -> int:
    """Granian (HTTP in Rust, the WSGI application on a pool of Python threads per worker process): a request
    costs a fraction of the CPU of a pure-Python server's (BENCHMARKS.md, "Engine floor vs server", twelfth
    round). Each worker process builds the application from the environment (`api:served_app`)."""
    from granian import Granian
    from granian.constants import Interfaces

    threads = int(os.environ.get("BPM_WEB_THREADS", "8" if settings.embedded else "4"))
    access_log = os.environ.get("BPM_ACCESS_LOG")
    Granian("api:served_app", factory=True, interface=Interfaces.WSGI, websockets=False, address=settings.host,
            port=settings.port, workers=workers, blocking_threads=threads, respawn_failed_workers=True,
            workers_kill_timeout=30,
            log_access=bool(access_log), log_dictconfig=_access_log_config(access_log) if access_log else None).serve()
    return 0


def _access_log_config(path: str) -> dict:
    """Granian's own logging configuration with the access log written to `path` ("-": standard output)."""
    from granian.log import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    if path != "-":
        config["handlers"]["access"] = {"formatter": "access", "class": "logging.FileHandler", "filename": path}
    return config


if __name__ == "__main__":
    sys.exit(main())
