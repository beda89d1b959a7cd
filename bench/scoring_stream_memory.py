"""Memory of one scoring process over one long IngestCdrs stream: flat once every line is known.

    .venv/bin/python bench/scoring_stream_memory.py [--cdrs 10000000] [--lines 50000] [--days 5] [--batch 2000]

The client generates the stream as it sends it (nothing is held in memory), over `--lines` lines and `--days`
of event time, so windows fill and expire as in service. The scoring process's resident memory is sampled every
million CDRs; the figure to read is the growth over the second half of the stream (every line known and its
windows full by then), as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import grpc
from procs import bench_pki, free_port, rss_mb, wait_serving
from scoring_ingest import INGEST, KEY, ROOT, Workload, seed_subscribers
from temporalio.testing import WorkflowEnvironment

from carrier.scoring.v1 import scoring_pb2
from pscommon import codec, temporal
from pscommon.tls import TlsFiles
from stack import postgres
from stack.binaries import venv_bin

SAMPLE_EVERY = 1_000_000


def stream(work: Workload, args: argparse.Namespace, pid: int, samples: list[tuple[int, float]]) -> Iterator[bytes]:
    span = args.days * 86400 * args.batch / args.cdrs
    sent = 0
    while sent < args.cdrs:
        cdrs = work.cdrs(args.batch, span_s=int(span))
        yield scoring_pb2.IngestCdrsRequest(request_id=uuid.uuid4().hex, cdrs=cdrs).SerializeToString()
        sent += len(cdrs)
        if sent % SAMPLE_EVERY < args.batch:
            samples.append((sent, rss_mb(pid)))
            print(f"  {sent:>11,} CDRs  RSS {samples[-1][1]:,.0f} MB", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cdrs", type=int, default=10_000_000)
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--days", type=float, default=5)
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="psp-bench-"))
    env_t = await WorkflowEnvironment.start_local(dev_server_existing_path=venv_bin("temporal"), ui=False)
    external = os.environ.get("DATABASE_URL")
    scoring = None
    try:
        server_uri = external or postgres.start_embedded(tmp / "pg")
        dsn = await postgres.ensure_database(server_uri, f"psp_bench_{uuid.uuid4().hex[:8]}")
        await temporal.ensure_search_attributes(env_t.client)
        work = Workload(args.lines)
        await seed_subscribers(dsn, work.msisdns)
        port = free_port()
        env = {
            **os.environ,
            **bench_pki(tmp / "pki"),
            "PSP_PRINCIPAL": "scoring",
            "DATABASE_URL": dsn,
            "TEMPORAL_ADDRESS": env_t.client.service_client.config.target_host,
            "PSP_LINE_HASH_KEY": KEY,
            "PSP_CODEC_KEYS": codec.new_key_spec("bench"),
            "PSP_CODEC_ACTIVE_KEY": "bench",
            "PSP_SCORING_ADDR": f"127.0.0.1:{port}",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'build' / 'gen'}",
        }
        log = open(tmp / "scoring.log", "w")
        scoring = subprocess.Popen([sys.executable, "-m", "services.scoring.server"], cwd=ROOT, env=env, stderr=log)
        wait_serving(port, TlsFiles.in_folder(tmp / "pki", "ops"))
        samples: list[tuple[int, float]] = [(0, rss_mb(scoring.pid))]
        print(f"one stream of {args.cdrs:,} CDRs over {args.lines:,} lines and {args.days:g} days", flush=True)
        mediation = TlsFiles.in_folder(tmp / "pki", "mediation")
        t0 = time.perf_counter()
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", mediation.channel_credentials()) as ch:
            call = ch.stream_unary(INGEST, response_deserializer=scoring_pb2.IngestCdrsResponse.FromString)
            resp = await call(stream(work, args, scoring.pid, samples))
        took = time.perf_counter() - t0
        known = next((rss for sent, rss in samples if sent >= SAMPLE_EVERY), samples[-1][1])
        half = next((rss for sent, rss in samples if sent >= args.cdrs // 2), samples[-1][1])
        print()
        print(f"accepted {resp.cdrs_accepted:,} CDRs in {took:.0f} s ({resp.cdrs_accepted / took:,.0f} CDR/s)")
        print(f"decisions answered {len(resp.decisions):,}, omitted {resp.decisions_omitted:,}")
        print(
            f"RSS idle {samples[0][1]:,.0f} MB; after 1M CDRs {known:,.0f} MB; at the end {samples[-1][1]:,.0f} MB"
            f" -> growth after the first million: {samples[-1][1] / known:.3f}x"
        )
        print(
            f"over the second half of the stream (windows full): {half:,.0f} -> {samples[-1][1]:,.0f} MB,"
            f" {samples[-1][1] / half:.3f}x"
        )
    finally:
        if scoring is not None:
            scoring.terminate()
            scoring.wait(120)
        await env_t.shutdown()
        if not external:
            postgres.stop_embedded(tmp / "pg")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)
