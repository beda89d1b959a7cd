"""psctl: operate the platform from a terminal (find a case, list views, call an RPC, play the demo)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from typing import Any

from pscli.datadir import configured, load_settings

# Commands that talk to a running stack: without its settings they say where they looked, and stop.
# (`case trace` reads the span file first and says where it looked for that itself.)
NEEDS_STACK = {"case find", "case status", "case act", "case list", "demo", "rpc"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="psctl", description="Protective-suspension platform control")
    ap.add_argument(
        "--as",
        dest="principal",
        default="",
        help="call as this principal (its certificate in PSP_PKI_DIR, e.g. reviewer-1); default: ops",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    case = sub.add_parser("case", help="cases")
    case_sub = case.add_subparsers(dest="case_command", required=True)
    find = case_sub.add_parser("find", help="find the cases of a phone number and their Temporal UI URLs")
    find.add_argument("msisdn")
    status = case_sub.add_parser("status", help="where a case stands (GetCaseStatus), by case id or phone number")
    status.add_argument("case", help="a case id (case-<line hash>-<n>) or the line's number")
    tr_case = case_sub.add_parser(
        "trace", help="a case's span tree across services, from the local stack's span file (no personal data)"
    )
    tr_case.add_argument("case", help="a case id (case-<line hash>-<n>) or the line's number")
    act = case_sub.add_parser(
        "act", help="act on a case waiting for an operator (needs_attention): retry, skip, restore or close"
    )
    act.add_argument("case_id")
    act.add_argument("choice", choices=["retry", "skip", "restore", "close"])
    act.add_argument("--note", required=True, help="why (recorded with your principal; never shown to the holder)")
    lst = case_sub.add_parser("list", help="the cases of a ready-made view (psctl views) or a list query, as a table")
    which = lst.add_mutually_exclusive_group(required=True)
    which.add_argument("--view", help="a view name from `psctl views`, e.g. needs-attention")
    which.add_argument("--query", help="a Temporal list query over the search attributes")
    lst.add_argument("--province", help="the home province code for views that take one (e.g. 44)")
    lst.add_argument("--limit", type=int, default=50)
    views = sub.add_parser("views", help="ready-made list queries and Temporal UI links for operators' common views")
    views.add_argument("--province", default="44", help="the home province code in views that take one")
    rpc = sub.add_parser("rpc", help="call any RPC with a platform certificate; prints the answer as JSON")
    rpc.add_argument("method", help="SERVICE/METHOD, e.g. VerificationService/GetCaseStatus")
    rpc.add_argument("request", nargs="?", default="{}", help="the request as JSON, @FILE, or - for stdin")
    rpc.add_argument("--as", dest="rpc_principal", default="", help="call as this principal (default: ops)")
    rpc.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds")
    sub.add_parser("demo", help="play the built-in scenario against the running stack")
    pki = sub.add_parser("pki", help="certificates of the local stack's CA")
    pki_sub = pki.add_subparsers(dest="pki_command", required=True)
    iss = pki_sub.add_parser("issue", help="issue a certificate and key for another principal")
    iss.add_argument("role", help="its role in the access table, e.g. reviewer, hall, customer-service")
    iss.add_argument("id", help="its id, e.g. reviewer-3 or hall-gz-01")
    iss.add_argument("--out", required=True, help="folder for <id>.pem, <id>.key and ca.pem")
    iss.add_argument("--server-name", action="append", default=[], help="a DNS name or IP it also serves as")
    rp = sub.add_parser("replay", help="replay a scenario file through scoring and write the decision file")
    rp.add_argument("scenario")
    rp.add_argument("--decisions", required=True, help="where to write the decisions (JSON Lines)")
    rp.add_argument("--keep-stack", action="store_true", help="leave a stack started for the replay running")
    gen = sub.add_parser("gen-scenario", help="write a scenario of named personas (legitimate and fraud)")
    gen.add_argument("out")
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--lines", type=int, default=10000)
    gen.add_argument("--days", type=int, default=7)
    gen.add_argument(
        "--variant",
        default="base",
        help="base, shifted (busier couriers, slower scammers) or shifted2 (busier sales staff, scammers a quarter slower)",
    )
    ev = sub.add_parser("evaluate", help="per-persona actions, false suspensions, recall and calls to first action")
    ev.add_argument("scenario")
    ev.add_argument("--decisions", help="a decision file; without it the scenario is replayed first")
    ev.add_argument(
        "--holdout-persona",
        metavar="P",
        help="train on the scenario without persona P and its family, and report how P is treated (in-process)",
    )
    ev.add_argument("--all-holdouts", action="store_true", help="leave out every persona in turn and print the table")
    tr = sub.add_parser("train", help="fit the scorecard's points from labelled persona scenarios (scikit-learn)")
    tr.add_argument("scenarios", nargs="+", help="scenario files whose subscribers carry persona/fraud tags")
    tr.add_argument("--out", required=True, help="where to write the new scorecard.yaml")
    tr.add_argument("--version", help="the new scorecard's version (default: scorecard-trained-<date>-<digest>)")
    tr.add_argument("--base", help="the scorecard whose hand-set rules are kept (default: the live one)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--note", default="", help="how the training data was made (recorded in the card)")
    args = ap.parse_args(argv)
    found = load_settings()
    principal = getattr(args, "rpc_principal", "") or args.principal
    os.environ["PSP_PRINCIPAL"] = principal or os.environ.get("PSP_PRINCIPAL") or "ops"
    if f"{args.command} {getattr(args, 'case_command', '')}".strip() in NEEDS_STACK and not configured():
        print(found.explain(), file=sys.stderr)
        return 2
    if args.command == "views":
        from pscli.views import print_views

        return print_views(args.province)
    if args.command == "rpc":
        from pscli.rpc import call

        return call(args.method, args.request, os.environ["PSP_PRINCIPAL"], args.timeout)
    if args.command == "replay":
        from pscli.replay import replay

        return replay(args.scenario, args.decisions, keep_stack=args.keep_stack)
    if args.command == "gen-scenario":
        from pscli.personas import generate

        summary = generate(args.out, seed=args.seed, lines=args.lines, days=args.days, variant=args.variant)
        print(json.dumps(summary, indent=2))
        return 0
    if args.command == "evaluate":
        from pscli.evaluation_cli import evaluate_command, holdout_command

        if args.holdout_persona or args.all_holdouts:
            return holdout_command(args.scenario, args.holdout_persona, seed=0)
        return evaluate_command(args.scenario, args.decisions)
    if args.command == "train":
        from pscli.evaluation_cli import train_command

        return train_command(args.scenarios, args.out, args.version, args.base, args.seed, args.note)
    if args.command == "pki":
        from pscli.pki import issue_command

        return issue_command(args.role, args.id, args.out, args.server_name)
    if args.command == "case":
        from pscli.case import act_on_case, case_status, find_cases
        from pscli.views import list_cases

        if args.case_command == "list":
            return _reaching_temporal(list_cases(args.view, args.query, args.province, args.limit))
        if args.case_command == "act":
            return asyncio.run(act_on_case(args.case_id, args.choice, args.note))
        if args.case_command == "status":
            return asyncio.run(case_status(args.case))
        if args.case_command == "trace":
            from pscli.trace import trace_case

            return trace_case(args.case)
        return _reaching_temporal(find_cases(args.msisdn))
    from pscli.demo import run_demo

    return asyncio.run(run_demo())


def _reaching_temporal(command: Coroutine[Any, Any, int]) -> int:
    """Runs a command that reads Temporal; a frontend that does not answer is said in one line, not a traceback."""
    try:
        return asyncio.run(command)
    except RuntimeError as err:
        from pscommon.temporal import unreachable

        if not unreachable(err):
            raise
        address = os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")
        where = os.environ.get("PSP_ENV_FILE", "the environment")
        print(f"psctl: Temporal at {address} does not answer (settings: {where}); is the stack up?", file=sys.stderr)
        return 2


def entry() -> None:
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's native threads can abort interpreter finalisation ("PyGILState_Release");
    # everything is written and closed by now, so leave without it.
    os._exit(code)


if __name__ == "__main__":
    entry()
