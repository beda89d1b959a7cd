"""PostgreSQL restarting under a running service: UNAVAILABLE (which callers retry) while it is away, answers
again once it is back, without restarting the service; and a service started while it is away waits for it.

Each test runs its own embedded PostgreSQL (not the session's), so stopping it disturbs no other test."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pathlib
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import grpc
import pytest
import pytest_asyncio

from carrier.common.v1 import common_pb2
from carrier.suspension.v1 import suspension_pb2, suspension_pb2_grpc
from pscommon import codec, db, grpc_server, temporal
from pscommon.config import Settings
from pscommon.probes import free_port
from services.suspension import server as suspension_server
from simulators.server import Simulators
from stack import postgres
from tests.conftest import TRUST_DOMAIN
from tests.helpers import tls_as


@dataclasses.dataclass
class Server:
    pgdata: pathlib.Path
    uri: str  # the server (database "postgres")

    def stop(self) -> None:
        postgres.stop_embedded(self.pgdata)

    def start(self) -> None:
        postgres.start_embedded(self.pgdata)

    async def go(self, how: str) -> None:
        """Takes the server away by a signal to the postmaster, as pg_ctl would (SIGINT: fast shutdown) or as a
        crash (SIGKILL), without forking pg_ctl out of a process whose gRPC threads are busy."""
        postmaster = postgres.postmaster(self.pgdata)
        assert postmaster is not None
        os.kill(postmaster, signal.SIGINT if how == "stopped" else signal.SIGKILL)
        deadline = time.monotonic() + 30
        while postgres.postmaster(self.pgdata) is not None:  # an outside process: nothing to await but its end
            assert time.monotonic() < deadline, "PostgreSQL did not stop"
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def own_server() -> Iterator[Server]:
    """Shared by this module's tests; each leaves it running."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="psp-restart-"))
    server = Server(folder / "pg", postgres.start_embedded(folder / "pg"))
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture
async def sims(pki_dir: pathlib.Path) -> AsyncIterator[Settings]:
    """The HLR suspension bars lines in (the simulators, in this process)."""
    cfg = Settings(pki_dir=str(pki_dir), trust_domain=TRUST_DOMAIN)
    simulators = Simulators()
    await simulators.start(dataclasses.replace(cfg, principal="simulators"), 0, 0, 0)
    assert simulators.grpc is not None
    yield dataclasses.replace(cfg, simulators_addr=f"127.0.0.1:{simulators.grpc.port}")
    await simulators.grpc.stop(0.2)


def problems(records: list[logging.LogRecord]) -> list[str]:
    """Log records a database restart must not cause: errors, and tracebacks at any level."""
    return [f"{r.name}: {r.getMessage()}" for r in records if r.levelno >= logging.ERROR or r.exc_info]


def line_change(msisdn: str, target: int) -> suspension_pb2.ChangeLineStateRequest:
    return suspension_pb2.ChangeLineStateRequest(
        request_id=uuid.uuid4().hex,
        msisdn=msisdn,
        home_province="44",
        target_state=target,
        actor=common_pb2.Actor(kind="workflow", id="restart-test"),
        case_id="case-restart-test",
        reason="RISK_HIGH",
    )


@pytest.mark.parametrize("how", ["stopped", "killed"])
async def test_a_restarting_database_answers_unavailable_and_then_serves_again(own_server, sims, caplog, how):
    """Stopped: a fast shutdown. Killed: kill -9 of the postmaster, whose sessions end with an error message each;
    its parent (pg_ctl) is gone, so unless something reaps it, it stays a zombie when the server starts again."""
    caplog.set_level(logging.INFO)
    dsn = await postgres.ensure_database(own_server.uri, f"psp_{uuid.uuid4().hex[:8]}")
    cfg = dataclasses.replace(sims, database_url=dsn, principal="suspension")
    svc = await suspension_server.start(cfg, 0)
    address = f"127.0.0.1:{svc.port}"
    # Plain channels (no retry policy): the test sees each answer as the service gives it.
    as_worker = grpc.aio.secure_channel(address, tls_as(cfg, "worker").channel_credentials())
    as_ops = grpc.aio.secure_channel(address, tls_as(cfg, "ops").channel_credentials())
    worker = suspension_pb2_grpc.SuspensionServiceStub(as_worker)
    ops = suspension_pb2_grpc.SuspensionServiceStub(as_ops)
    msisdn = "19377770001"
    numbers = iter(range(10**6))

    async def some_call(i: int) -> None:
        n = next(numbers)
        if i % 3 == 0:
            await ops.ListLineHistory(suspension_pb2.ListLineHistoryRequest(msisdn=f"1937801{n:04d}"), timeout=10)
        elif i % 3 == 1:
            await ops.GetLine(suspension_pb2.GetLineRequest(msisdn=msisdn), timeout=10)
        else:
            await worker.ChangeLineState(line_change(f"1937802{n:04d}", common_pb2.LINE_STATE_WARNED), timeout=10)

    answers: list[grpc.StatusCode] = []

    async def caller(i: int, until: asyncio.Event) -> None:
        while not until.is_set():
            try:
                await some_call(i)
                answers.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as err:
                answers.append(err.code())
                await asyncio.sleep(0.01)

    try:
        await worker.ChangeLineState(line_change(msisdn, common_pb2.LINE_STATE_WARNED), timeout=10)
        history = suspension_pb2.ListLineHistoryRequest(msisdn=msisdn)
        assert len((await ops.ListLineHistory(history, timeout=10)).entries) == 1

        caplog.clear()
        done = asyncio.Event()
        callers = [asyncio.create_task(caller(i, done)) for i in range(6)]  # busy when the server goes
        await asyncio.sleep(0.3)
        await own_server.go(how)
        await asyncio.sleep(0.3)
        done.set()
        await asyncio.gather(*callers)
        outage = []
        for i in range(9):  # each kind of call, several times, once nothing else runs
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await some_call(i)
            outage.append(caught.value.code())
        assert set(outage) == {grpc.StatusCode.UNAVAILABLE}, outage
        assert set(answers) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, set(answers)
        assert problems(caplog.records) == []
        assert any("(transient)" in r.getMessage() for r in caplog.records)  # the guard said why, in one line

        await asyncio.to_thread(own_server.start)  # pg_ctl, once no call is in flight
        # The same service process, not restarted: the pool reconnects on the first call.
        changed = await worker.ChangeLineState(line_change(msisdn, common_pb2.LINE_STATE_RESTRICTED), timeout=10)
        assert changed.line.state == common_pb2.LINE_STATE_RESTRICTED
        assert len((await ops.ListLineHistory(history, timeout=10)).entries) == 2
        got = await ops.GetLine(suspension_pb2.GetLineRequest(msisdn=msisdn), timeout=10)
        assert got.in_sync
        assert problems(caplog.records) == []
    finally:
        await as_worker.close()
        await as_ops.close()
        await svc.stop(0.2)


def _error_response(severity: str, code: str, message: str) -> bytes:
    """A PostgreSQL ErrorResponse message, as the server sends it."""
    fields = ((b"S", severity), (b"V", severity), (b"C", code), (b"M", message))
    body = b"".join(key + value.encode() + b"\0" for key, value in fields) + b"\0"
    return b"E" + (len(body) + 4).to_bytes(4, "big") + body


async def test_a_session_the_server_ended_is_a_lost_connection_not_an_internal_error(own_server):
    """PostgreSQL ends an idle session with an error message, then closes the socket; a call in between used to
    get asyncpg's InternalClientError (INTERNAL to the caller). Here the message arrives and the socket stays."""
    dsn = await postgres.ensure_database(own_server.uri, f"psp_{uuid.uuid4().hex[:8]}")
    pool = await db.connect(dsn, "suspension", suspension_server.MIGRATIONS, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            protocol = conn._con._protocol  # the wire, as the server's message reaches it
            protocol.data_received(_error_response("FATAL", "57P01", "terminating connection due to administrator"))
            with pytest.raises(asyncpg.ConnectionDoesNotExistError) as caught:
                await conn.fetchval("SELECT 1")
            assert isinstance(caught.value, grpc_server.TRANSIENT)
        assert await pool.fetchval("SELECT 1") == 1  # the pool replaced the ended session
    finally:
        await pool.close()


async def test_a_service_started_while_the_database_is_down_waits_for_it(own_server, sims, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("PSP_STARTUP_WAIT_S", "60")
    dsn = await postgres.ensure_database(own_server.uri, f"psp_{uuid.uuid4().hex[:8]}")
    # A password in the address (trust authentication ignores it): no log line may show it.
    dsn = dsn.replace("postgres:@", "postgres:hunter2-secret@")
    cfg = dataclasses.replace(sims, database_url=dsn, principal="suspension")
    await own_server.go("stopped")
    starting = asyncio.create_task(suspension_server.start(cfg, 0))
    waited = asyncio.Event()

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("waiting for PostgreSQL"):
                waited.set()

    seen = Seen()
    logging.getLogger("pscommon.db").addHandler(seen)
    try:
        await asyncio.wait_for(waited.wait(), 10)
        assert not starting.done()
        await asyncio.to_thread(own_server.start)
        svc = await asyncio.wait_for(starting, 30)
    finally:
        logging.getLogger("pscommon.db").removeHandler(seen)
        if not starting.done():
            starting.cancel()
    try:
        ops = grpc.aio.secure_channel(f"127.0.0.1:{svc.port}", tls_as(cfg, "ops").channel_credentials())
        stub = suspension_pb2_grpc.SuspensionServiceStub(ops)
        assert (await stub.ListLineHistory(suspension_pb2.ListLineHistoryRequest(msisdn="19377770002"))).entries == []
        await ops.close()
    finally:
        await svc.stop(0.2)
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting for PostgreSQL")]
    assert waits and all("postgres:***@" in w for w in waits)
    assert not any("hunter2" in r.getMessage() for r in caplog.records)


async def test_the_wait_at_start_up_is_bounded_and_only_for_an_unreachable_database(tmp_path, caplog):
    nowhere = f"postgresql://postgres:@/psp?host={tmp_path}"  # no server's socket there
    t0 = time.monotonic()
    with pytest.raises(OSError):
        await db.connect(nowhere, "suspension", suspension_server.MIGRATIONS, wait_s=0.6)
    assert 0.5 < time.monotonic() - t0 < 5
    assert any(r.getMessage().startswith("waiting for PostgreSQL") for r in caplog.records)


async def test_a_missing_database_is_not_waited_for(own_server):
    t0 = time.monotonic()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await db.connect(postgres.with_database(own_server.uri, "no_such_db"), "x", pathlib.Path("-"), wait_s=30)
    assert time.monotonic() - t0 < 5


async def test_temporal_is_waited_for_at_start_up_within_the_bound(caplog):
    key = codec.new_key_spec("t-1")
    cfg = Settings(temporal_address=f"127.0.0.1:{free_port()}", codec_keys=key, codec_active_key="t-1")  # nobody there
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await temporal.connect(cfg, wait_s=0.6)
    assert 0.5 < time.monotonic() - t0 < 5
    assert any(r.getMessage().startswith(f"waiting for Temporal at {cfg.temporal_address}") for r in caplog.records)


def test_transient_database_failures_are_unavailable_to_callers():
    """What the drill saw while PostgreSQL restarted maps to UNAVAILABLE in the guard of every service."""
    for err in (
        FileNotFoundError(2, "No such file or directory"),  # the socket is gone
        ConnectionRefusedError(111, "Connection refused"),  # the socket is there, nobody listens
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"),
    ):
        assert isinstance(err, grpc_server.TRANSIENT), err
