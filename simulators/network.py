"""The simulated network state shared by the HLR and the SMSC: barring and where each handset is."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from carrier.hlr.v1 import hlr_pb2


@dataclass
class Handset:
    barring: hlr_pb2.BarringProfile = field(default_factory=hlr_pb2.BarringProfile)
    location: hlr_pb2.LocationStatus.ValueType = hlr_pb2.LOCATION_STATUS_HOME
    country: str = ""
    visited_province: str = ""


class Network:
    def __init__(self) -> None:
        self.handsets: dict[str, Handset] = {}
        self._watchers: set[asyncio.Queue[tuple[str, Handset]]] = set()

    def handset(self, msisdn: str) -> Handset:
        return self.handsets.setdefault(msisdn, Handset())

    def move(
        self, msisdn: str, location: hlr_pb2.LocationStatus.ValueType, country: str = "", visited_province: str = ""
    ) -> None:
        """An attach, detach or roaming event: the handset's new location, told to every watcher."""
        h = self.handset(msisdn)
        h.location, h.country, h.visited_province = location, country, visited_province
        for q in self._watchers:
            q.put_nowait((msisdn, h))

    def watch(self) -> asyncio.Queue[tuple[str, Handset]]:
        q: asyncio.Queue[tuple[str, Handset]] = asyncio.Queue()
        self._watchers.add(q)
        return q

    def unwatch(self, q: asyncio.Queue[tuple[str, Handset]]) -> None:
        self._watchers.discard(q)

    def reachable(self, msisdn: str) -> bool:
        """Attached somewhere: a call rings, an app push arrives over data (unless data is barred)."""
        return self.handset(msisdn).location != hlr_pb2.LOCATION_STATUS_ABSENT

    def sms_reachable(self, msisdn: str) -> tuple[bool, str]:
        """Whether an SMS to this handset lands now, and the receipt error when it does not."""
        h = self.handset(msisdn)
        if h.location == hlr_pb2.LOCATION_STATUS_ABSENT:
            return False, "absent subscriber"
        if h.barring.incoming_sms:
            return False, "incoming SMS barred"
        if h.location == hlr_pb2.LOCATION_STATUS_ROAMING_INTERNATIONAL and h.country in SMS_DEAD_COUNTRIES:
            return False, "absent subscriber"
        return True, ""


# Visited networks whose SMS interworking with our home network fails (the Nepal case).
SMS_DEAD_COUNTRIES = {"NP"}
