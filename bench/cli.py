"""`python -m bench [--sizes 10k,100k,1m] [--only webhook,dashboard,queue,send,driveway] [--smoke] [--output PATH]`.

Starts a throwaway Postgres, and for each size loads fresh data and measures the
dashboard's data and reminder queueing; the webhook sidecar is measured once at the
largest size (it needs thousands of open invoices), Send via Stripe and the driveway (text
the pay link, watch for Paid) once each on their own small database. A part that is not on
main yet is reported as not measured. Prints the report and writes it to
docs/PERFORMANCE.md (or --output).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import parts
from bench.report import Report
from bench.rows import anchor_for, parse_size, size_label
from bench.sections import Config, Runner

DEFAULT_SIZES = "10k,100k,1m"
DEFAULT_OUTPUT = parts.ROOT / "docs" / "PERFORMANCE.md"
LAST_RESULTS = parts.ROOT / ".data" / "bench-last-results.pickle"
SMOKE_SIZES = "300"
ALL_PARTS = ("dashboard", "queue", "webhook", "send", "driveway")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help=f"invoice counts, e.g. {DEFAULT_SIZES} (default)")
    p.add_argument("--only", default=",".join(ALL_PARTS), help="parts to measure: " + ",".join(ALL_PARTS))
    p.add_argument("--smoke", action="store_true", help="tiny sizes and few repetitions (seconds, for tests)")
    p.add_argument("--output", type=Path, default=None,
                   help="where to write the report (default docs/PERFORMANCE.md; with --smoke: not written)")
    p.add_argument("--baseline", default=None, metavar="REF",
                   help="also measure this commit's webhook sidecar beside HEAD's, alternating, in this run; "
                        "'auto' (the default of a full run): the commit the committed docs/PERFORMANCE.md was "
                        "measured on; 'none': skip")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the bench cluster's folder under .data/")
    p.add_argument("--merge", action="store_true",
                   help="with --only send: replace only the Send section and the Send targets of the existing "
                        "report (docs/PERFORMANCE.md), keeping every other part as measured before")
    p.add_argument("--rerender", action="store_true",
                   help=f"rewrite the report from the last run's saved results ({LAST_RESULTS}) without measuring")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted({parse_size(s) for s in (args.sizes or (SMOKE_SIZES if args.smoke else DEFAULT_SIZES)).split(",")})
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in only if p not in ALL_PARTS]
    if unknown:
        print(f"unknown part(s): {', '.join(unknown)}; choose from {', '.join(ALL_PARTS)}", file=sys.stderr)
        return 2
    output = args.output or (None if args.smoke else DEFAULT_OUTPUT)
    if args.rerender:
        return rerender(output or DEFAULT_OUTPUT)
    if not os.environ.get("CRM_SECRET_KEY"):
        from cryptography.fernet import Fernet

        os.environ["CRM_SECRET_KEY"] = Fernet.generate_key().decode()
    started_at = datetime.now(UTC)
    command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
    cfg = Config(sizes=sizes, only=only, smoke=args.smoke, seed=args.seed, anchor=anchor_for(started_at),
                 started_at=started_at, commit=parts.head_commit(), command=command,
                 baseline=baseline_ref(args.baseline or ("none" if args.smoke else "auto")))
    report = Report()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
        runner = Runner(cfg, report, Path(logs), keep=args.keep)
        try:
            runner.run()
        except Exception:  # noqa: BLE001 - the partial report is still worth printing
            traceback.print_exc()
            print("bench failed; the report so far follows", file=sys.stderr)
            runner.finish(time.perf_counter() - started, failed=True)
            print(report.markdown())
            return 1
    elapsed = time.perf_counter() - started
    runner.finish(elapsed)
    if args.merge:
        return merge_send(report, output or DEFAULT_OUTPUT, cfg, elapsed, only)
    if output == DEFAULT_OUTPUT:  # only the run behind docs/PERFORMANCE.md is kept for --rerender
        save_results(cfg, runner.results, elapsed)
    text = report.markdown()
    print(text)
    if output is not None:
        report.write(output)
        print(f"wrote {output} ({', '.join(size_label(s) for s in sizes)})", file=sys.stderr)
    return 0


def merge_send(report: Report, output: Path, cfg: Config, seconds: float, only: list[str]) -> int:
    """`make bench-send`: the Send part's section and targets into the existing report."""
    from bench.report import merge_part

    if only != ["send"] or not output.exists():
        print("--merge needs --only send and an existing report to merge into", file=sys.stderr)
        return 2
    note = (f"- Send via Stripe re-measured alone: {cfg.started_at:%Y-%m-%d %H:%M} UTC, "
            f"`{cfg.command}`, {seconds / 60:.1f} minutes, code {cfg.commit or parts.head_commit()}")
    from bench.render import FIRST_RUN_TITLE

    merged = merge_part(output.read_text(encoding="utf-8"), report, {"Send via Stripe", FIRST_RUN_TITLE}, "Send",
                        note)
    output.write_text(merged, encoding="utf-8")
    print(next(s.markdown() for s in report.sections if s.title == "Send via Stripe"))
    print(report.targets_markdown())
    print(f"merged the Send part into {output}", file=sys.stderr)
    return 0


def baseline_ref(arg: str) -> str | None:
    """The baseline commit to measure, or None. 'auto': the commit the committed report names
    (its '- Code: <sha> ...' line), unless that is HEAD itself."""
    if arg == "none":
        return None
    if arg != "auto":
        return arg
    report = parts.committed_text("docs/PERFORMANCE.md")
    sha = next((line.split()[2] for line in report.splitlines() if line.startswith("- Code: ")), None)
    if not sha or parts.head_commit().startswith(sha):
        return None
    return sha


def save_results(cfg: Config, results: object, seconds: float) -> None:
    """Kept under .data/ (not committed) so wording changes can be re-rendered without a 10-minute run."""
    LAST_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    LAST_RESULTS.write_bytes(pickle.dumps((cfg, results, seconds)))


def rerender(output: Path) -> int:
    if not LAST_RESULTS.exists():
        print(f"no saved results at {LAST_RESULTS}: run the bench first", file=sys.stderr)
        return 2
    cfg, results, seconds = pickle.loads(LAST_RESULTS.read_bytes())  # our own file, written by save_results
    report = Report()
    from bench import render

    render.render(report, cfg, results, seconds, False)
    report.write(output)
    print(report.markdown())
    print(f"re-rendered {output} from {LAST_RESULTS}", file=sys.stderr)
    return 0
