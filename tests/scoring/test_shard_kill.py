"""Three scoring shards as real processes: shard 1 is killed with SIGKILL in the middle of the stream and started
again; mediation sends each unanswered batch again. Every line's features then equal those of one engine that saw
every CDR exactly once, and the checkpoints taken meanwhile (every second) change nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from pscommon import channels, codec
from pscommon.probes import free_port, grpc_serving
from stack import postgres
from stack.binaries import venv_bin
from tests.conftest import TRUST_DOMAIN
from tests.helpers import rid, tls_as
from tests.scoring.processes import KEY, LINES, _escalations, batches, fresh_engine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORDINARY = set(LINES[6:])  # lines that never escalate: no case is opened by this test


class Shards:
    def __init__(self, env: dict[str, str], n: int) -> None:
        self.env = env
        self.n = n
        self.ports = [free_port() for _ in range(n)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n

    @property
    def addrs(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, i: int) -> None:
        """Starts shard i, stopping the one running first (else it lingers after the test, its partitions gone)."""
        running = self.procs[i]
        if running is not None and running.poll() is None:
            running.terminate()
            running.wait(60)
        env = {
            **self.env,
            "PSP_SCORING_SHARDS": str(self.n),
            "PSP_SCORING_SHARD": str(i),
            "PSP_SCORING_SHARD_ADDRS": self.addrs,
            "PSP_SCORING_ADDR": f"127.0.0.1:{self.ports[i]}",
        }
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "services.scoring.server"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
        )

    def wait_serving(self, i: int, tls) -> None:
        deadline = time.monotonic() + 60
        while not grpc_serving(self.ports[i], tls):  # an outside process: nothing to await but its answer
            assert time.monotonic() < deadline, f"shard {i} did not come up"
            assert self.procs[i] is not None and self.procs[i].poll() is None, f"shard {i} exited"
            time.sleep(0.1)

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(60)


@pytest_asyncio.fixture
async def shards(database_server, pki_dir) -> AsyncIterator[tuple[Shards, object]]:
    dsn = await postgres.ensure_database(database_server, f"psp_kill_{uuid.uuid4().hex[:8]}")
    temporal_env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_bin("temporal-test-server")
    )
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "PSP_PKI_DIR": str(pki_dir),
        "PSP_TRUST_DOMAIN": TRUST_DOMAIN,
        "PSP_PRINCIPAL": "scoring",
        "PSP_LINE_HASH_KEY": KEY,
        "PSP_CODEC_KEYS": codec.new_key_spec("kill-1"),
        "PSP_CODEC_ACTIVE_KEY": "kill-1",
        "PSP_SCORING_SNAPSHOT_S": "1",
    }
    cluster = Shards(env, 3)
    try:
        yield cluster, pki_dir
    finally:
        cluster.stop()
        await temporal_env.shutdown()


async def test_a_shard_killed_mid_stream_loses_and_doubles_nothing(shards, stack) -> None:
    cluster, _ = shards
    ops = tls_as(stack.cfg, "ops")
    for i in range(3):
        cluster.start(i)
    for i in range(3):
        await asyncio.to_thread(cluster.wait_serving, i, ops)
    entry = cluster.addrs.split(",")[0]
    scoring = scoring_pb2_grpc.ScoringServiceStub(channels.channel(entry, tls_as(stack.cfg, "mediation")))
    for m in sorted(ORDINARY):
        await scoring.UpsertSubscriber(
            scoring_pb2.UpsertSubscriberRequest(
                request_id=rid(), msisdn=m, home_province="44", opened_at="2020-01-01", language="zh"
            )
        )
    work = [[r for r in rows if r[0] in ORDINARY] for rows in batches(11, n=24)]
    unanswered = 0
    for b, rows in enumerate(work):
        if b == 9:
            cluster.kill(1)  # mid-stream: its last batches live only in its journal
        if b == 14:
            cluster.start(1)
            await asyncio.to_thread(cluster.wait_serving, 1, ops)
        request = scoring_pb2.IngestCdrsRequest(
            request_id=uuid.uuid5(uuid.NAMESPACE_URL, f"kill-{b}").hex, cdrs=[cdr(r) for r in rows]
        )
        while True:  # mediation: a batch without an answer is sent again, as it was
            try:
                await scoring.IngestCdrs(one(request), timeout=10)
                break
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE, err
                unanswered += 1
                if cluster.procs[1] is not None and cluster.procs[1].poll() is not None:
                    cluster.start(1)
                    await asyncio.to_thread(cluster.wait_serving, 1, ops)
    assert unanswered, "the kill was meant to leave some batch unanswered"

    engine = fresh_engine()
    for rows in work:
        _escalations(engine, rows)
    reader = scoring_pb2_grpc.ScoringServiceStub(channels.channel(entry, tls_as(stack.cfg, "customer-service")))
    for m in sorted(ORDINARY):
        got = await reader.GetAssessment(scoring_pb2.GetAssessmentRequest(msisdn=m))
        want = engine.current(m)
        assert want is not None
        assert dict(got.features) == pytest.approx({k: float(v) for k, v in want[1].items()}), m


async def one(request):
    yield request


def cdr(row: tuple) -> scoring_pb2.Cdr:
    m, peer, province, direction, start, duration, cell, roaming, imei, service = row
    c = scoring_pb2.Cdr(
        msisdn=m,
        peer=peer,
        peer_province=province,
        direction=direction,
        duration_s=duration,
        cell_id=cell,
        roaming=roaming or scoring_pb2.ROAMING_NONE,
        imei=imei,
        service=service,
    )
    c.start.seconds = start
    return c
