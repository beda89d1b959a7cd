"""psctl: operate the platform from a terminal (find a case, play the demo)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from stack.env import apply_local_env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="psctl", description="Protective-suspension platform control")
    sub = ap.add_subparsers(dest="command", required=True)
    case = sub.add_parser("case", help="cases")
    case_sub = case.add_subparsers(dest="case_command", required=True)
    find = case_sub.add_parser("find", help="find the cases of a phone number and their Temporal UI URLs")
    find.add_argument("msisdn")
    sub.add_parser("demo", help="play the built-in scenario against the running stack")
    args = ap.parse_args(argv)
    apply_local_env()
    if args.command == "case":
        from pscli.case import find_cases

        return asyncio.run(find_cases(args.msisdn))
    from pscli.demo import run_demo

    return asyncio.run(run_demo())


def entry() -> None:
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's native threads can abort interpreter finalisation ("PyGILState_Release");
    # everything is written and closed by now, so leave without it.
    os._exit(code)


if __name__ == "__main__":
    entry()
