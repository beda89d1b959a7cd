"""Scenario replay in a sandbox: a fresh engine with the live scorecard, no case opened, nothing stored.

Everything runs in event time, so replaying the same scenario twice gives the same verdicts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from carrier.common.v1 import common_pb2
from carrier.scoring.v1 import scoring_pb2
from contracts.pb import ACTION_PB, RISK_LEVEL_PB
from pscommon.validation import Violations
from services.scoring import requests
from services.scoring.engine import Engine
from services.scoring.features import Profile
from services.scoring.scorecard import ACTIONS, LEVELS, Assessment, Scorecard, split_reason_texts

OUT, SMS, ABROAD = scoring_pb2.DIRECTION_OUT, scoring_pb2.SERVICE_KIND_SMS, scoring_pb2.ROAMING_INTERNATIONAL


def _reason_pb(code: str, text_zh: str, text_en: str, points: float) -> common_pb2.Reason:
    return common_pb2.Reason(code=code, text_zh=text_zh, text_en=text_en, weight=points)


def reasons_pb(a: Assessment | None) -> list[common_pb2.Reason]:
    """The evidence against the line (points > 0), most important first."""
    return [_reason_pb(r.code, r.text_zh, r.text_en, r.points) for r in a.reasons] if a is not None else []


def mitigations_pb(a: Assessment | None) -> list[common_pb2.Reason]:
    """The factors in the holder's favour (points <= 0), strongest first."""
    return [_reason_pb(r.code, r.text_zh, r.text_en, r.points) for r in a.mitigations] if a is not None else []


def stored_reasons_pb(texts: list) -> tuple[list[common_pb2.Reason], list[common_pb2.Reason]]:
    """A stored decision's [code, zh, en, points] rows split into (reasons, mitigations) by the sign of the points.

    Rows stored before mitigations were kept apart hold both in one list; the sign tells them apart the same way.
    """
    against, favour = split_reason_texts(texts)
    return [_reason_pb(*r) for r in against], [_reason_pb(*r) for r in favour]


def score_cdrs(engine: Engine, rows: list[requests.CdrRow]) -> list:
    """The hot loop shared by live ingest and replay: returns the escalations, in order."""
    observe = engine.observe
    out = []
    for msisdn, peer, province, direction, start, duration, cell, roaming, imei, service in rows:
        e = observe(
            msisdn, peer, province, direction == OUT, start, duration, cell, roaming == ABROAD, imei, service == SMS
        )
        if e is not None:
            out.append(e)
    return out


class Sandbox:
    def __init__(self, scorecard: Scorecard) -> None:
        self.engine = Engine(scorecard, track_peaks=True)
        self.order: dict[str, None] = {}
        self.cdrs = 0
        self.items = 0

    def apply(self, item: scoring_pb2.ReplayScenarioRequest) -> None:
        """Applies one item; raises INVALID_ARGUMENT naming items[i].<field> when it is malformed."""
        i, self.items = self.items, self.items + 1
        kind = item.WhichOneof("item")
        v = Violations()
        p = f"items[{i}].{kind}"
        if kind == "subscriber":
            s = item.subscriber
            requests.check_profile(v, s, p + ".")
            v.raise_if_any()
            self.engine.set_profile(
                s.msisdn, Profile(s.home_province, date.fromisoformat(s.opened_at), s.enterprise, s.language)
            )
            self.order[s.msisdn] = None
        elif kind == "cell":
            requests.check_cell(v, item.cell, p)
            v.raise_if_any()
            if item.cell.risk >= scoring_pb2.CELL_RISK_ELEVATED:
                self.engine.cells[item.cell.cell_id] = item.cell.risk
        elif kind == "cdrs":
            rows = requests.cdr_rows(v, item.cdrs.cdrs, p + ".cdrs", requests.REPLAY_LATEST_S)
            v.raise_if_any()
            score_cdrs(self.engine, rows)
            self.cdrs += len(item.cdrs.cdrs)
        elif kind == "report":
            requests.check_report(v, item.report, p + ".", live=False)
            v.raise_if_any()
            r = item.report
            self.engine.report(r.msisdn, r.at.seconds, requests.report_source(r.source))
        else:
            v.add(f"items[{i}].item", "required: one of subscriber, cell, cdrs or report")
            v.raise_if_any()

    def verdicts(self) -> scoring_pb2.ReplayScenarioResponse:
        resp = scoring_pb2.ReplayScenarioResponse(cdrs=self.cdrs, model_version=self.engine.scorecard.version)
        peaks = self.engine.peaks or {}
        for msisdn in self.order:
            pk = peaks.get(msisdn)
            v = resp.verdicts.add(msisdn=msisdn, risk_level=common_pb2.RISK_LEVEL_LOW, action=common_pb2.ACTION_NONE)
            if pk is None:
                continue
            v.risk_level = RISK_LEVEL_PB[LEVELS[pk.level]]
            v.score = pk.score
            v.action = ACTION_PB[ACTIONS[pk.action]]
            v.reasons.extend(reasons_pb(pk.assessment))
            v.mitigations.extend(mitigations_pb(pk.assessment))
            if pk.acted_at is not None:
                v.acted_at.FromDatetime(datetime.fromtimestamp(pk.acted_at, UTC))
                v.outgoing_before_action = pk.outgoing_before_action
        return resp
