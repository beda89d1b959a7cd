"""A persona corpus replayed through the scoring service's gRPC stream meets the detection targets.

A small corpus keeps the suite fast; `psctl gen-scenario` + `psctl evaluate` run the 10,000-line one.
"""

from __future__ import annotations

import asyncio

from pscli.evaluate import evaluate, passes
from pscli.personas import PERSONAS, generate
from pscli.replay import replay
from tests.helpers import tls_as


async def test_persona_corpus_meets_the_targets_through_grpc(stack, tmp_path):
    scenario, decisions = tmp_path / "corpus.jsonl", tmp_path / "decisions.jsonl"
    generate(str(scenario), seed=11, lines=1200, days=3)
    assert (
        await asyncio.to_thread(
            replay, str(scenario), str(decisions), stack.cfg.scoring_addr, tls=tls_as(stack.cfg, "ops")
        )
        == 0
    )
    report = evaluate(str(scenario), str(decisions))
    assert passes(report) == []
    # Every persona is in the corpus, and the couriers and riders of design.md §1 are never restricted or worse.
    per = report.personas
    assert set(per) == set(PERSONAS)
    for persona in ("courier", "rider", "truck_driver", "road_tripper", "traveller"):
        assert per[persona].actions["suspend"] == 0, persona
