"""psctl: operate the platform from a terminal (find a case, play the demo)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from pscommon.config import apply_env_file


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
    act = case_sub.add_parser(
        "act", help="act on a case waiting for an operator (needs_attention): retry, skip, restore or close"
    )
    act.add_argument("case_id")
    act.add_argument("choice", choices=["retry", "skip", "restore", "close"])
    act.add_argument("--note", required=True, help="why (recorded with your principal; never shown to the holder)")
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
    apply_env_file()
    os.environ["PSP_PRINCIPAL"] = args.principal or os.environ.get("PSP_PRINCIPAL") or "ops"
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

        if args.case_command == "act":
            return asyncio.run(act_on_case(args.case_id, args.choice, args.note))
        if args.case_command == "status":
            return asyncio.run(case_status(args.case))
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
