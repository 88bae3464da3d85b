"""`python -m crm ...`: the operator's commands (crm/__main__.py calls `main`).

Owns argument parsing for migrate, create-user, seed-demo, doctor, up (the whole local
system), reconcile and export (the accountant's CSV files). Each command is a small
function; the work lives in crm/ (users, reconcile, export), db/ (migrations) and the
other ops/ tools.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

Command = Callable[[argparse.Namespace], int]


def cmd_migrate(args: argparse.Namespace) -> int:
    from db.config import resolved_database_url
    from db.migrate import migrate

    applied = migrate(resolved_database_url())
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise SystemExit("passwords do not match")
    return first


def cmd_create_user(args: argparse.Namespace) -> int:
    from crm.users.auth import create_user
    from crm.users.passwords import WeakPasswordError
    from db.pool import connect

    password = _read_password(args)
    try:
        with connect() as conn:
            user_id = create_user(conn, args.email, args.name or "", args.role, password)
    except WeakPasswordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a constraint message is what the operator needs
        print(f"error: could not create user: {exc}", file=sys.stderr)
        return 1
    print(f"created {args.role} {args.email} (id {user_id})")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from db.pool import connect
    from ops.seed import seed_demo

    with connect() as conn:
        counts = seed_demo(conn)
    if counts:
        print("seeded demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    else:
        print("demo data already present; nothing to do")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ops.doctor import run_doctor

    return run_doctor()


def cmd_up(args: argparse.Namespace) -> int:
    from ops.supervisor import run_all

    return run_all(seed=not args.no_seed)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from crm.stripe.reconcile import run_reconcile

    report = run_reconcile("cli")
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def cmd_export(args: argparse.Namespace) -> int:
    from crm.config.settings import load_settings
    from crm.money.accounting_export import ExportError, export_to
    from db.pool import connect

    with connect() as conn:
        tz = str(load_settings(conn)["business.timezone"])
        try:
            result, paths = export_to(conn, args.start, args.end, tz, Path(args.out))
        except ExportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print("\n".join(result.summary()))
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_rotate_secret_key(args: argparse.Namespace) -> int:
    from crm.config.secret_rotation import run_rotation

    return run_rotation()


COMMANDS: dict[str, Command] = {
    "migrate": cmd_migrate,
    "create-user": cmd_create_user,
    "seed-demo": cmd_seed_demo,
    "doctor": cmd_doctor,
    "up": cmd_up,
    "reconcile": cmd_reconcile,
    "export": cmd_export,
    "rotate-secret-key": cmd_rotate_secret_key,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crm", description="Service-business CRM operations")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending database migrations (safe to repeat)")
    p = sub.add_parser("create-user", help="add a dashboard user; password from a prompt or stdin")
    p.add_argument("email")
    p.add_argument("--role", choices=["owner", "staff"], default="staff")
    p.add_argument("--name", default="")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("seed-demo", help="load a demo business (once; a second run does nothing)")
    sub.add_parser("doctor", help="check the database, migrations, pg_cron, RLS and integrations")
    p = sub.add_parser("up", help="run the whole system locally: database, sandbox, sidecar, dashboard")
    p.add_argument("--no-seed", action="store_true", help="do not load the demo business")
    sub.add_parser("reconcile", help="catch up with Stripe: apply missed events, repair drifted invoices (repeatable)")
    p = sub.add_parser("export", help="CSV files for QuickBooks Online: invoices, payments, fees, refunds, disputes")
    p.add_argument("--from", dest="start", type=_day, required=True, help="first day (YYYY-MM-DD, business time zone)")
    p.add_argument("--to", dest="end", type=_day, required=True, help="last day, included (YYYY-MM-DD)")
    p.add_argument("--out", required=True, help="folder to write the CSV files into (created if missing)")
    sub.add_parser("rotate-secret-key", help="re-encrypt every stored secret with CRM_SECRET_KEY "
                                             "(old keys in CRM_SECRET_KEYS_OLD)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)
