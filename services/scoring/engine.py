"""The streaming engine: feeds CDRs into line windows and reports when a line's action escalates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.scoring.features import LineWindow, Profile, features
from services.scoring.scorecard import ACTIONS, Assessment, Scorecard


@dataclass(frozen=True, slots=True)
class CallRecord:
    msisdn: str
    peer: str
    peer_province: str
    outgoing: bool
    start: datetime
    duration_s: int
    cell_id: str


@dataclass(frozen=True)
class Escalation:
    msisdn: str
    assessment: Assessment
    at: datetime


class Engine:
    def __init__(self, scorecard: Scorecard) -> None:
        self.scorecard = scorecard
        self.profiles: dict[str, Profile] = {}
        self.windows: dict[str, LineWindow] = {}
        self.acted: dict[str, int] = {}  # strongest action already taken per line (index in ACTIONS)
        self.high_risk_cells: set[str] = set()

    def set_profile(self, msisdn: str, profile: Profile) -> None:
        self.profiles[msisdn] = profile

    def observe(self, cdr: CallRecord) -> Escalation | None:
        profile = self.profiles.get(cdr.msisdn)
        if profile is None:
            return None  # not one of our subscribers: nothing to assess
        w = self.windows.get(cdr.msisdn)
        if w is None:
            w = self.windows[cdr.msisdn] = LineWindow()
        if cdr.cell_id and cdr.cell_id in self.high_risk_cells:
            w.high_risk_cells_hour.append(cdr.start)
        if not cdr.outgoing:
            w.add_in(cdr.start, cdr.peer)
            return None
        w.add_out(cdr.start, cdr.peer, cdr.peer_province, cdr.duration_s)
        assessment = self.scorecard.assess(features(w, profile, cdr.start))
        rank = ACTIONS.index(assessment.action)
        if rank == 0 or rank <= self.acted.get(cdr.msisdn, 0):
            return None
        self.acted[cdr.msisdn] = rank
        return Escalation(cdr.msisdn, assessment, cdr.start)

    def current(self, msisdn: str, now: datetime) -> tuple[Assessment, dict[str, float]] | None:
        profile, w = self.profiles.get(msisdn), self.windows.get(msisdn)
        if profile is None:
            return None
        f = features(w or LineWindow(), profile, now)
        return self.scorecard.assess(f), f

    def clear(self, msisdn: str) -> None:
        """A case closed: the next escalation opens a new one."""
        self.acted.pop(msisdn, None)
