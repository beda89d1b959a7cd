"""One in-process stack per test session: embedded PostgreSQL, Temporal's time-skipping server, the
simulators (with a real SMPP SMSC), the four gRPC services and the worker, all on ephemeral ports."""

from __future__ import annotations

import os

# gRPC core logs every refused TLS handshake at INFO; the security tests make hundreds on purpose.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import dataclasses
import pathlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from pscommon import channels, codec, temporal
from pscommon.config import Settings
from pscommon.pki import LocalPki
from pscommon.telemetry import setup_tracing
from services.notify import server as notify_server
from services.scoring import server as scoring_server
from services.suspension import server as suspension_server
from services.verification import server as verification_server
from simulators.server import Simulators
from stack import postgres
from stack.binaries import venv_bin
from workflows import worker as case_worker

TRUST_DOMAIN = "psp.test"
SPANS = InMemorySpanExporter()
setup_tracing("tests").add_span_processor(SimpleSpanProcessor(SPANS))


@dataclass
class Stack:
    cfg: Settings
    env: WorkflowEnvironment
    client: Client
    sims: Simulators
    spans: InMemorySpanExporter
    services: dict = dataclasses.field(default_factory=dict)


@pytest.fixture(scope="session")
def pki_dir() -> Iterator[pathlib.Path]:
    """The tests' own CA and a certificate per process and caller, as the local stack issues them."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="psp-pki-"))
    LocalPki(folder, TRUST_DOMAIN).ensure_local()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_server() -> str:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="psp-test-"))
    uri = postgres.server_uri(tmp)
    yield uri
    postgres.stop_embedded(tmp / "pg")
    shutil.rmtree(tmp, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def stack(database_server: str, pki_dir: pathlib.Path) -> AsyncIterator[Stack]:
    dsn = await postgres.ensure_database(database_server, f"psp_test_{uuid.uuid4().hex[:8]}")
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=venv_bin("temporal-test-server"))
    cfg = Settings(
        database_url=dsn,
        temporal_address=env.client.service_client.config.target_host,
        codec_keys=codec.new_key_spec("test-1"),
        codec_active_key="test-1",
        # Notify signs the holder's link into warnings, notices and reminders (tests/portal opens it).
        link_keys=codec.new_key_spec("link-test"),
        link_active_key="link-test",
        case_policy="default",
        delivery_policy="delivery_demo",
        pki_dir=str(pki_dir),
        trust_domain=TRUST_DOMAIN,
    )
    client = await temporal.connect(cfg)
    await temporal.ensure_search_attributes(client)
    sims = Simulators()
    await sims.start(dataclasses.replace(cfg, principal="simulators"), 0, 0, 0)
    assert sims.grpc is not None and sims.smsc is not None and sims.mail is not None
    cfg = dataclasses.replace(
        cfg, simulators_addr=f"127.0.0.1:{sims.grpc.port}", smsc_port=sims.smsc.port, smtp_port=sims.mail.port
    )
    services = {}
    for name, module in (
        ("suspension", suspension_server),
        ("notify", notify_server),
        ("verification", verification_server),
        ("scoring", scoring_server),
    ):
        services[name] = await module.start(dataclasses.replace(cfg, principal=name), 0)
        # Services started later (verification asks suspension) call the ones started before.
        cfg = dataclasses.replace(cfg, **{f"{name}_addr": f"127.0.0.1:{services[name].port}"})
    worker: Worker = case_worker.build(client, dataclasses.replace(cfg, principal="worker"))
    async with worker:
        yield Stack(cfg, env, client, sims, SPANS, services)
    for svc in services.values():
        await svc.stop(0.5)
    await sims.grpc.stop(0.5)
    await channels.close_all()
    await env.shutdown()


_exit_status = {"code": 0}


def pytest_sessionfinish(session, exitstatus) -> None:
    _exit_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    # The Temporal core's native threads can abort interpreter finalisation ("PyGILState_Release"),
    # turning a green run red after the summary; every fixture has been torn down by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status["code"])
