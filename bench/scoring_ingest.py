"""Scoring throughput and decision latency through the real gRPC stream, beside decode-only baselines.

    .venv/bin/python bench/scoring_ingest.py [--lines 200000] [--warm 1000000] [--cdrs 1000000] [--batch 2000]
                                             [--shards 1,2] [--latency-rate 20000] [--latency-batches 500,250]
                                             [--db-dir /dev/shm] [--before /tmp/before-checkout]

Starts an embedded PostgreSQL and a Temporal dev server, then for each shard count the scoring shards as their
own processes (as deployed) on a fresh database, the client dealing its batches over them; then baselines
in their own processes: the same stream decoded by protobuf with nothing else, and decoded
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
from dataclasses import dataclass
from datetime import date

import grpc
from procs import bench_pki, cpu_s, free_port, rss_mb, start_profiler, wait_serving
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
        step = span_s / max(n, 1)
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
    """Sends batches at a steady rate on ScoreCdrs; each ack carries that batch's decisions. The channel is
    connected first: mediation keeps its stream open, and a TLS handshake is no decision's latency (counted, it
    delayed the first four batches of 500 by 24-66 ms, most of the slowest 1 %)."""
    interval = batch / rate_cdrs
    sent: dict[int, float] = {}
    latencies: list[float] = []
    async with _channel(address, tls) as ch:
        await ch.channel_ready()
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


@dataclass
class ShardRun:
    code: str  # "now", or "before": the --before checkout
    shards: int
    cold: float | None
    rate: float
    busy_cores: float
    latency_ms: dict[int, tuple[float, float]]  # batch size -> (p50, p99)
    flush_ms: dict[int, tuple[float, float, float]]  # batch size -> the disk's flush (p50, p99, max) meanwhile
    rss_warm_mb: list[float]
    rss_mb: list[float]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)]


async def run_shards(
    n: int,
    args: argparse.Namespace,
    work: Workload,
    payloads: dict[str, list[bytes]],
    base_env: dict,
    tmp: pathlib.Path,
    db_dir: pathlib.Path,
    code: pathlib.Path = ROOT,
) -> ShardRun:
    """N scoring shards on a fresh database; the client spreads its batches over them (as a load-balanced
    Service does: any shard takes any batch and hands the other shards their parts)."""
    server_uri = base_env["PSP_BENCH_PG"]
    dsn = await postgres.ensure_database(server_uri, f"psp_bench_{uuid.uuid4().hex[:8]}")
    await seed_subscribers(dsn, work.msisdns)
    ports = [free_port() for _ in range(n)]
    addrs = ",".join(f"127.0.0.1:{p}" for p in ports)
    mediation = TlsFiles.in_folder(tmp / "pki", "mediation")
    procs = []
    for i, port in enumerate(ports):
        env = {
            **base_env,
            "DATABASE_URL": dsn,
            "PSP_SCORING_ADDR": f"127.0.0.1:{port}",
            "PSP_SCORING_SHARDS": str(n),
            "PSP_SCORING_SHARD": str(i),
            "PSP_SCORING_SHARD_ADDRS": addrs,
            "PYTHONPATH": f"{code}:{gen_of(code)}",
        }
        log = open(tmp / f"scoring-{n}-{i}-{code.name}.log", "w")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "services.scoring.server"], cwd=code, env=env, stdout=log, stderr=log
            )
        )
    try:
        for port in ports:
            wait_serving(port, TlsFiles.in_folder(tmp / "pki", "ops"))
        targets = [f"127.0.0.1:{p}" for p in ports]
        cold = None
        if payloads["warm"]:
            took, accepted = await spread(targets, payloads["warm"], mediation)
            cold = accepted / took
        rss_warm = [rss_mb(p.pid) for p in procs]
        cpu0 = sum(cpu_s(p.pid) for p in procs)
        profiler = start_profiler(procs[0].pid, "/tmp/scoring-profile.txt") if n == 1 else None
        took, accepted = await spread(targets, payloads["ingest"], mediation)
        busy = (sum(cpu_s(p.pid) for p in procs) - cpu0) / took
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        assert accepted == args.cdrs, accepted
        latency, flush = {}, {}
        for size in latency_sizes(args):
            # The disk's flush latency measured at the same time, under the writes the shards are making.
            probe = asyncio.create_task(asyncio.to_thread(fsync_latency_ms, db_dir, 14.0))
            took_s = await paced_latency(targets[0], payloads[f"latency-{size}"], args.latency_rate, size, mediation)
            flush[size] = await probe
            lat_ms = [x * 1000 for x in took_s]
            latency[size] = (statistics.median(lat_ms), pct(lat_ms, 0.99))
        return ShardRun(
            "now" if code == ROOT else "before",
            n,
            cold,
            args.cdrs / took,
            busy,
            latency,
            flush,
            rss_warm,
            [rss_mb(p.pid) for p in procs],
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(60)  # each shard writes its checkpoint on the way out
            except subprocess.TimeoutExpired:
                p.kill()


def gen_of(code: pathlib.Path) -> pathlib.Path:
    """A checkout's generated code, or this one's (a worktree made for --before has none of its own)."""
    own = code / "build" / "gen"
    return own if own.is_dir() else ROOT / "build" / "gen"


def fsync_latency_ms(folder: pathlib.Path, seconds: float = 10.0) -> tuple[float, float, float]:
    """p50, p99 and max of an 8 KiB write + fdatasync on the database's disk, as a commit's WAL flush does: a batch is
    acknowledged only once its journal entry is durable, so no decision can be faster than the disk's flush."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    took, block, until = [], os.urandom(8192), time.monotonic() + seconds
    try:
        while time.monotonic() < until:
            os.write(fd, block)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            took.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.02)  # about as often as batches of 500 arrive at 20k CDR/s
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(took), pct(took, 0.99), max(took)


def latency_sizes(args: argparse.Namespace) -> list[int]:
    return [int(x) for x in args.latency_batches.split(",") if x.strip()]


async def spread(targets: list[str], payloads: list[bytes], tls: TlsFiles) -> tuple[float, int]:
    """One stream per shard, the batches dealt out in turn; returns the wall time and the CDRs accepted."""
    t0 = time.perf_counter()
    done = await asyncio.gather(*(stream_all(t, payloads[i :: len(targets)], tls) for i, t in enumerate(targets)))
    return time.perf_counter() - t0, sum(accepted for _, accepted in done)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--cdrs", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=1_000_000, help="CDRs ingested first, unmeasured (0: cold start)")
    ap.add_argument("--latency-rate", type=int, default=20_000, help="CDR/s offered in the latency phase")
    ap.add_argument("--latency-batches", default="500,250", help="ScoreCdrs batch sizes of the latency phase")
    ap.add_argument("--shards", default="1,2", help="shard counts to run, one after the other (e.g. 1,2)")
    ap.add_argument(
        "--before",
        type=pathlib.Path,
        help="another checkout (e.g. `git worktree add /tmp/before <commit>`) whose scoring server runs the same"
        " phases first, in this run, so the two compare on the same machine and load",
    )
    ap.add_argument(
        "--db-dir",
        help="folder for the embedded PostgreSQL (default: the bench's temporary folder); /dev/shm takes the disk's"
        " flush out of the figures, to tell the platform's own latency from the disk's",
    )
    args = ap.parse_args()
    shard_counts = [int(x) for x in args.shards.split(",") if x.strip()]

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="psp-bench-"))
    db_dir = pathlib.Path(tempfile.mkdtemp(prefix="psp-bench-pg-", dir=args.db_dir)) if args.db_dir else tmp
    procs: list[subprocess.Popen] = []
    external = os.environ.get("DATABASE_URL")
    env_t = await WorkflowEnvironment.start_local(dev_server_existing_path=venv_bin("temporal"), ui=False)
    try:
        server_uri = external or postgres.start_embedded(db_dir / "pg")
        target = env_t.client.service_client.config.target_host
        await temporal.ensure_search_attributes(env_t.client)

        print(f"generating {args.cdrs:,} CDRs over {args.lines:,} lines ...", flush=True)
        work = Workload(args.lines)
        # The warm-up's 6 hours come first in event time: the measured CDRs find their lines known, with calls in
        # their windows to expire and snapshots to write, as in a service that has been running.
        payloads = {
            "warm": batches(work.cdrs(args.warm, span_s=6 * 3600), args.batch, scoring_pb2.IngestCdrsRequest),
            "ingest": batches(work.cdrs(args.cdrs, span_s=6 * 3600), args.batch, scoring_pb2.IngestCdrsRequest),
        }
        for size in latency_sizes(args):  # 15 s each, event time going on after the measured stream
            cdrs = work.cdrs(args.latency_rate * 15, span_s=900)
            payloads[f"latency-{size}"] = batches(cdrs, size, scoring_pb2.ScoreCdrsRequest)
        pki = tmp / "pki"
        env = {
            **os.environ,
            **bench_pki(pki),
            "PSP_PRINCIPAL": "scoring",
            "PSP_BENCH_PG": server_uri,
            "TEMPORAL_ADDRESS": target,
            "PSP_LINE_HASH_KEY": KEY,
            "PSP_CODEC_KEYS": codec.new_key_spec("bench"),
            "PSP_CODEC_ACTIVE_KEY": "bench",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'build' / 'gen'}",
        }
        disk = fsync_latency_ms(db_dir)
        runs = []
        for n in shard_counts:
            for code in ([args.before.resolve()] if args.before else []) + [ROOT]:
                print(f"{n} shard(s), {code} ...", flush=True)
                runs.append(await run_shards(n, args, work, payloads, env, tmp, db_dir, code))

        mediation = TlsFiles.in_folder(pki, "mediation")
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
            btook, _ = await stream_all(
                f"127.0.0.1:{bport}", payloads["ingest"], mediation if "--tls" in extra else None
            )
            baselines[name] = args.cdrs / btook

        read = baselines["decode + read fields, mutual TLS"]
        print()
        print(f"{args.cdrs:,} CDRs over {args.lines:,} lines, batches of {args.batch}, after {args.warm:,} warm-up")
        print(
            f"{'code':>6} {'shards':>6} {'CDR/s':>10} {'/ decode+read':>14} {'cold CDR/s':>11} {'cores':>6}"
            f" {'p50/p99 ms by batch size':>26}  RSS MB per shard after warm-up -> after the measured stream"
        )
        for r in runs:
            cold = f"{r.cold:,.0f}" if r.cold is not None else "-"
            rss = ", ".join(f"{w:.0f} -> {m:.0f}" for w, m in zip(r.rss_warm_mb, r.rss_mb, strict=True))
            lat = " ".join(f"{n}: {p50:.1f}/{p99:.1f}" for n, (p50, p99) in r.latency_ms.items())
            print(
                f"{r.code:>6} {r.shards:>6} {r.rate:>10,.0f} {r.rate / read:>14.3f} {cold:>11} {r.busy_cores:>6.2f}"
                f" {lat:>26}  {rss}"
            )
        now = [r for r in runs if r.code == "now"]
        if len(now) > 1:
            print(f"{now[-1].shards} shards / 1 shard: {now[-1].rate / now[0].rate:.2f}x")
        for r, b in zip(now, [r for r in runs if r.code == "before"], strict=False):
            print(f"{r.shards} shard(s), now / before: {r.rate / b.rate:.3f}x CDR/s ({args.before})")
        print(
            f"p50/p99: decision latency at {args.latency_rate:,} CDR/s offered (ScoreCdrs, 15 s per batch size; a"
            " batch's latency is from its send to its answer, not counting the time its CDRs took to arrive)"
        )
        print(
            f"baseline 8 KiB write + fdatasync on the database's disk ({db_dir.parent}), idle: p50 {disk[0]:.1f} ms, p99 {disk[1]:.1f} ms,"
            f" max {disk[2]:.1f} ms"
            " (every acknowledged batch waits for one WAL flush)"
        )
        for r in runs:
            for size, (_, p99) in r.latency_ms.items():
                f50, f99, fmax = r.flush_ms[size]
                ratio = f"decision p99 / that flush p99 = {p99 / f99:.1f}" if f99 >= 0.5 else "no flush to speak of"
                print(
                    f"  {r.code}, {r.shards} shard(s), batches of {size}: the same flush meanwhile p50 {f50:.1f} ms, p99"
                    f" {f99:.1f} ms, max {fmax:.1f} ms; {ratio}"
                )
        for name, brate in baselines.items():
            print(f"baseline {name:<32} {brate:>10,.0f} CDR/s")
        plain, tls = baselines["decode only, plaintext"], baselines["decode only, mutual TLS"]
        print(f"mutual TLS on the decode-only stream: {tls / plain:.3f} of plaintext throughput")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        await env_t.shutdown()
        if not external:
            postgres.stop_embedded(db_dir / "pg")
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(db_dir, ignore_errors=True)
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
