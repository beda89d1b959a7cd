"""Scoring throughput and decision latency through the real gRPC stream, beside decode-only baselines.

    .venv/bin/python bench/scoring_ingest.py [--lines 200000] [--warm 1000000] [--cdrs 1000000] [--batch 2000]

Starts an embedded PostgreSQL and a Temporal dev server, the scoring service as its own process (as deployed),
and two baselines in their own processes: the same stream decoded by protobuf with nothing else, and decoded
with every field read. The client sends pre-serialised batches, so it costs little beside the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date

import grpc
from procs import bench_pki, cpu_s, free_port, rss_mb, start_profiler, threads, wait_serving
from temporalio.testing import WorkflowEnvironment

from carrier.scoring.v1 import scoring_pb2
from pscommon import codec, db, temporal
from pscommon.identity import line_hash
from pscommon.tls import TlsFiles
from services.scoring import server as scoring_server
from stack import postgres
from stack.binaries import venv_bin

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEY = "bench-line-hash-key"
T0 = 1_790_000_000  # event time of the first call
INGEST = "/carrier.scoring.v1.ScoringService/IngestCdrs"
SCORE = "/carrier.scoring.v1.ScoringService/ScoreCdrs"


class Workload:
    """Ordinary lines (calls in and out among their contacts) and a few scam lines bursting to strangers."""

    def __init__(self, lines: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.msisdns = [f"1{n}" for n in self.rng.sample(range(3000000000, 9999999999), lines)]
        self.fraud = set(self.rng.sample(range(lines), max(1, lines // 500)))
        self.t = T0

    def cdrs(self, n: int, span_s: int) -> list[scoring_pb2.Cdr]:
        rng, out = self.rng, []
        step = span_s / n
        fraud = sorted(self.fraud)
        for i in range(n):
            self.t += step
            if i % 50 == 0:  # one call in fifty comes from a scam line (0.2 % of the lines)
                line = rng.choice(fraud)
                peer, prov, direction, duration = f"13{rng.randrange(10**9):09d}", "35", 1, rng.choice((0, 0, 12))
            else:
                line = rng.randrange(len(self.msisdns))
                peer = f"15{(line * 31 + rng.randrange(12)) % 10**9:09d}"
                prov, direction, duration = "44", rng.choice((1, 2)), rng.randrange(200)
            c = scoring_pb2.Cdr(
                msisdn=self.msisdns[line],
                peer=peer,
                peer_province=prov,
                direction=direction,
                service=1,
                duration_s=duration,
                cell_id=f"460-00-{line % 5000}-1",
                roaming=1,
                imei=f"86{line:013d}",
            )
            c.start.seconds = int(self.t)
            out.append(c)
        return out


def batches(cdrs: list[scoring_pb2.Cdr], size: int, request_cls) -> list[bytes]:
    return [
        request_cls(request_id=uuid.uuid4().hex, cdrs=cdrs[i : i + size]).SerializeToString()
        for i in range(0, len(cdrs), size)
    ]


def _channel(address: str, tls: TlsFiles | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, tls.channel_credentials())


async def stream_all(address: str, payloads: list[bytes], tls: TlsFiles | None) -> tuple[float, int]:
    async with _channel(address, tls) as ch:
        call = ch.stream_unary(INGEST, response_deserializer=scoring_pb2.IngestCdrsResponse.FromString)
        t0 = time.perf_counter()
        resp = await call(iter(payloads))
        took = time.perf_counter() - t0
    return took, resp.cdrs_accepted


async def paced_latency(address: str, payloads: list[bytes], rate_cdrs: int, batch: int, tls: TlsFiles) -> list[float]:
    """Sends batches at a steady rate on ScoreCdrs; each ack carries that batch's decisions."""
    interval = batch / rate_cdrs
    sent: dict[int, float] = {}
    latencies: list[float] = []
    async with _channel(address, tls) as ch:
        call = ch.stream_stream(SCORE, response_deserializer=scoring_pb2.ScoreCdrsResponse.FromString)()

        async def send() -> None:
            start = time.perf_counter()
            for i, p in enumerate(payloads):
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[i] = time.perf_counter()
                await call.write(p)
            await call.done_writing()

        writer = asyncio.create_task(send())
        i = 0
        async for _ in call:
            latencies.append(time.perf_counter() - sent[i])
            i += 1
        await writer
    return latencies


async def seed_subscribers(dsn: str, msisdns: list[str]) -> None:
    pool = await db.connect(dsn, "scoring", scoring_server.MIGRATIONS)
    rows = [(line_hash(m, KEY), m, "44", date(2020, 1, 1), "", "zh") for m in msisdns]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "subscribers",
            schema_name="scoring",
            records=rows,
            columns=["line_hash", "msisdn", "home_province", "opened_at", "enterprise", "language"],
        )
    await pool.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--cdrs", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=1_000_000, help="CDRs ingested first, unmeasured (0: cold start)")
    ap.add_argument("--latency-rate", type=int, default=20_000, help="CDR/s offered in the latency phase")
    args = ap.parse_args()

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="psp-bench-"))
    procs: list[subprocess.Popen] = []
    external = os.environ.get("DATABASE_URL")
    env_t = await WorkflowEnvironment.start_local(dev_server_existing_path=venv_bin("temporal"), ui=False)
    try:
        server_uri = external or postgres.start_embedded(tmp / "pg")
        dsn = await postgres.ensure_database(server_uri, f"psp_bench_{uuid.uuid4().hex[:8]}")
        target = env_t.client.service_client.config.target_host
        await temporal.ensure_search_attributes(env_t.client)

        print(f"generating {args.cdrs:,} CDRs over {args.lines:,} lines ...", flush=True)
        work = Workload(args.lines)
        # The warm-up's 6 hours come first in event time: the measured CDRs find their lines known, with calls in
        # their windows to expire and snapshots to write, as in a service that has been running.
        warm_payloads = batches(work.cdrs(args.warm, span_s=6 * 3600), args.batch, scoring_pb2.IngestCdrsRequest)
        cdrs = work.cdrs(args.cdrs, span_s=6 * 3600)
        ingest_payloads = batches(cdrs, args.batch, scoring_pb2.IngestCdrsRequest)
        latency_payloads = batches(work.cdrs(args.latency_rate * 15, span_s=900), 500, scoring_pb2.ScoreCdrsRequest)
        await seed_subscribers(dsn, work.msisdns)

        port = free_port()
        keys = codec.new_key_spec("bench")
        pki = tmp / "pki"
        mediation = TlsFiles.in_folder(pki, "mediation")
        env = {
            **os.environ,
            **bench_pki(pki),
            "PSP_PRINCIPAL": "scoring",
            "DATABASE_URL": dsn,
            "TEMPORAL_ADDRESS": target,
            "PSP_LINE_HASH_KEY": KEY,
            "PSP_CODEC_KEYS": keys,
            "PSP_CODEC_ACTIVE_KEY": "bench",
            "PSP_SCORING_ADDR": f"127.0.0.1:{port}",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'build' / 'gen'}",
        }
        scoring = subprocess.Popen(
            [sys.executable, "-m", "services.scoring.server"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "scoring.log", "w"),
        )
        procs.append(scoring)
        wait_serving(port, TlsFiles.in_folder(pki, "ops"))
        idle_rss = rss_mb(scoring.pid)
        cold = None
        if warm_payloads:
            took, accepted = await stream_all(f"127.0.0.1:{port}", warm_payloads, mediation)
            cold = accepted / took
        cpu0 = cpu_s(scoring.pid)
        profiler = start_profiler(scoring.pid, "/tmp/scoring-profile.txt")
        took, accepted = await stream_all(f"127.0.0.1:{port}", ingest_payloads, mediation)
        busy = (cpu_s(scoring.pid) - cpu0) / took
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        assert accepted == args.cdrs, accepted
        rate = args.cdrs / took
        busy_rss = rss_mb(scoring.pid)
        latencies = await paced_latency(f"127.0.0.1:{port}", latency_payloads, args.latency_rate, 500, mediation)

        baselines = {}
        for name, extra in (
            ("decode only, plaintext", []),
            ("decode only, mutual TLS", ["--tls"]),
            ("decode + read fields, mutual TLS", ["--read-fields", "--tls"]),
        ):
            bport = free_port()
            p = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "decode_server.py"), str(bport), *extra], cwd=ROOT, env=env
            )
            procs.append(p)
            wait_serving_plain(bport)
            btook, _ = await stream_all(f"127.0.0.1:{bport}", ingest_payloads, mediation if "--tls" in extra else None)
            baselines[name] = args.cdrs / btook

        lat_ms = sorted(x * 1000 for x in latencies)
        p50 = statistics.median(lat_ms)
        p99 = lat_ms[int(len(lat_ms) * 0.99) - 1]
        print()
        if cold is not None:
            print(
                f"cold start      {cold:>12,.0f} CDR/s   (the first {args.warm:,} CDRs: every line new to the engine)"
            )
        what = "sustained, lines known" if cold is not None else "cold start"
        print(
            f"scoring ingest  {rate:>12,.0f} CDR/s   ({args.cdrs:,} CDRs, {what}, {args.lines:,} lines,"
            f" batches of {args.batch})"
        )
        for name, brate in baselines.items():
            print(f"{name:<32} {brate:>10,.0f} CDR/s   ratio scoring/baseline: {rate / brate:.3f}")
        plain, tls = baselines["decode only, plaintext"], baselines["decode only, mutual TLS"]
        print(f"mutual TLS on the decode-only stream: {tls / plain:.3f} of plaintext throughput")
        print(
            f"decision latency at {args.latency_rate:,} CDR/s offered (batch of 500, ack with decisions):"
            f" p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        print(f"scoring process CPU during ingest: {busy:.0%} of one core, threads: {threads(scoring.pid)}")
        print(f"scoring RSS: idle {idle_rss:.0f} MB, after ingest {busy_rss:.0f} MB")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(60)  # scoring writes its window snapshot on the way out
            except subprocess.TimeoutExpired:
                p.kill()
        await env_t.shutdown()
        if not external:
            postgres.stop_embedded(tmp / "pg")
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


def wait_serving_plain(port: int, timeout_s: float = 30) -> None:
    from pscommon.probes import tcp_open

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not tcp_open(port):
        time.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # the Temporal core's threads can abort interpreter finalisation
