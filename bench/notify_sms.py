"""SMS submits per second through the notify service, beside a bare smpp34 client on the same SMSC.

    .venv/bin/python bench/notify_sms.py [--messages 5000] [--concurrency 200]

Starts an embedded PostgreSQL, the simulators (the smpp34 SMSC among them) and the notify service, each in its
own process as deployed. First a bare smpp34 client submits the messages with delivery receipts requested and
waits for every receipt; then the same number of warnings go through notify's SendNotification, and the clock
stops when PostgreSQL holds every one as delivered by SMS (persisted, receipt correlated).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import asyncpg
import smpp34
from procs import CpuSplit, bench_pki, free_port, start_profiler, wait_serving

from carrier.common.v1 import common_pb2
from carrier.notify.v1 import notify_pb2, notify_pb2_grpc
from pscommon.channels import channel
from pscommon.tls import TlsFiles
from stack import postgres

ROOT = pathlib.Path(__file__).resolve().parents[1]
BODY = "【安全提醒】您的号码138****0000近期使用异常：1小时内拨出23次。请于2026-11-23 10:00前完成核验。"


def numbers(n: int) -> list[str]:
    return [f"1380{i:07d}" for i in range(n)]


async def bare_client(port: int, dests: list[str], window: int) -> float:
    """Submit every message (UCS-2, receipt requested) and wait for every receipt; returns messages/s."""
    client = smpp34.Client(
        host="127.0.0.1", port=port, system_id="bench", password="bench", bind_type="TRX", window_size=window
    )
    smsc = await client.connect()
    payload = BODY.encode("utf-16-be")
    receipts = 0
    done = asyncio.Event()

    async def read() -> None:
        nonlocal receipts
        while True:
            ev = await smsc.next()
            if isinstance(ev, smpp34.Disconnected):
                return
            if ev.esm_class & 0x04:
                receipts += 1
                if receipts == len(dests):
                    done.set()

    reader = asyncio.create_task(read())
    sem = asyncio.Semaphore(window)

    async def submit(dest: str) -> None:
        async with sem:
            r = await smsc.submit_sm(
                destination_addr=dest,
                short_message=b"",
                source_addr="10086",
                registered_delivery=1,
                data_coding=8,
                tlvs=[smpp34.Tlv(smpp34.TLV_MESSAGE_PAYLOAD, payload)],
            )
            assert r.is_success

    t0 = time.perf_counter()
    await asyncio.gather(*(submit(d) for d in dests))
    await done.wait()
    took = time.perf_counter() - t0
    reader.cancel()
    await smsc.unbind()
    await client.stop()
    return len(dests) / took


async def through_notify(
    addr: str, dsn: str, dests: list[str], concurrency: int, worker: TlsFiles
) -> tuple[float, float]:
    stub = notify_pb2_grpc.NotifyServiceStub(channel(addr, worker))
    sem = asyncio.Semaphore(concurrency)
    reasons = [common_pb2.Reason(code="CALL_BURST", text_zh="1小时内拨出23次", text_en="23 calls in 1 hour")]

    async def send(dest: str) -> None:
        async with sem:
            await stub.SendNotification(
                notify_pb2.SendNotificationRequest(
                    request_id=uuid.uuid4().hex,
                    msisdn=dest,
                    home_province="44",
                    case_id=f"bench-{dest}",
                    template=notify_pb2.TEMPLATE_WARNING,
                    language="zh",
                    reasons=reasons,
                    next_step_zh="登录 https://verify.example/r 完成核验",
                    next_step_en="verify online",
                    pending_action=common_pb2.ACTION_RESTRICT,
                ),
                timeout=30,
            )

    conn = await asyncpg.connect(dsn)
    t0 = time.perf_counter()
    await asyncio.gather(*(send(d) for d in dests))
    accepted = time.perf_counter() - t0
    while True:  # a bench, not a test: watch the store until every message is delivered and correlated
        n = await conn.fetchval(
            "SELECT count(*) FROM notify.notifications WHERE status = $1 AND delivered_channel = $2",
            notify_pb2.DELIVERY_STATUS_DELIVERED,
            notify_pb2.CHANNEL_SMS,
        )
        if n >= len(dests):
            break
        await asyncio.sleep(0.05)
    took = time.perf_counter() - t0
    await conn.close()
    return len(dests) / took, len(dests) / accepted


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--window", type=int, default=64, help="SMPP window of the bare client (notify uses 64)")
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="psp-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        dsn = await postgres.ensure_database(postgres.start_embedded(tmp / "pg"), f"psp_bench_{uuid.uuid4().hex[:8]}")
        postmaster = int((tmp / "pg" / "postmaster.pid").read_text().split()[0])
        sims_port, smsc_port, notify_port = free_port(), free_port(), free_port()
        pki = tmp / "pki"
        env = {
            **os.environ,
            **bench_pki(pki),
            "DATABASE_URL": dsn,
            "PSP_SIMULATORS_ADDR": f"127.0.0.1:{sims_port}",
            "PSP_SMSC_PORT": str(smsc_port),
            "PSP_SMTP_PORT": str(free_port()),
            "PSP_NOTIFY_ADDR": f"127.0.0.1:{notify_port}",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'build' / 'gen'}",
        }
        for mod, port, principal in (
            ("simulators.server", sims_port, "simulators"),
            ("services.notify.server", notify_port, "notify"),
        ):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", mod],
                    cwd=ROOT,
                    env={**env, "PSP_PRINCIPAL": principal},
                    stdout=subprocess.DEVNULL,
                    stderr=open(tmp / f"{mod}.log", "w"),
                )
            )
            wait_serving(port, TlsFiles.in_folder(pki, "ops"))
        print(f"{args.messages:,} messages, UCS-2, receipt requested, one SMSC (smpp34) ...", flush=True)
        bare = await bare_client(smsc_port, numbers(args.messages), args.window)
        split = CpuSplit(
            {"notify": procs[1].pid, "simulators": procs[0].pid, "postgres": postmaster, "bench client": os.getpid()},
            frozenset({"postgres"}),
        )
        split.start()
        profiler = start_profiler(procs[1].pid, "/tmp/notify-profile.txt")
        rate, accept_rate = await through_notify(
            f"127.0.0.1:{notify_port}", dsn, numbers(args.messages), args.concurrency, TlsFiles.in_folder(pki, "worker")
        )
        cpu = split.report()
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        print()
        print(f"bare smpp34 client     {bare:>8,.0f} msg/s  (submit + receipt, window {args.window})")
        print(
            f"through notify         {rate:>8,.0f} msg/s  (accepted, submitted, persisted, receipt correlated)"
            f"   ratio {rate / bare:.3f}"
        )
        print(f"  SendNotification accepted at {accept_rate:,.0f}/s")
        print(f"  {cpu}")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        postgres.stop_embedded(tmp / "pg")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)
