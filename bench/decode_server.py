"""The baseline for bench/scoring_ingest.py: the same gRPC stream decoded by protobuf, with no scoring at all.

`--read-fields` also reads every field the engine reads (what Python pays before any scoring happens); `--tls`
serves over mutual TLS like the platform (plain, it shows what mutual TLS costs the transport).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal

import grpc

from carrier.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from pscommon.tls import TlsFiles


class DecodeOnly(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, read_fields: bool) -> None:
        self.read_fields = read_fields

    async def IngestCdrs(self, request_iterator, context):
        n = 0
        async for batch in request_iterator:
            n += len(batch.cdrs)
            if self.read_fields:
                for c in batch.cdrs:
                    _ = (
                        c.msisdn,
                        c.peer,
                        c.peer_province,
                        c.direction,
                        c.start.seconds,
                        c.duration_s,
                        c.cell_id,
                        c.roaming,
                        c.imei,
                        c.service,
                    )
        return scoring_pb2.IngestCdrsResponse(cdrs_accepted=n)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--read-fields", action="store_true")
    ap.add_argument("--tls", action="store_true", help="mutual TLS with the scoring certificate of PSP_PKI_DIR")
    args = ap.parse_args()
    server = grpc.aio.server()
    scoring_pb2_grpc.add_ScoringServiceServicer_to_server(DecodeOnly(args.read_fields), server)
    address = f"127.0.0.1:{args.port}"
    if args.tls:
        pki = pathlib.Path(os.environ["PSP_PKI_DIR"])
        server.add_secure_port(address, TlsFiles.in_folder(pki, "scoring").server_credentials())
    else:
        server.add_insecure_port(address)
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
