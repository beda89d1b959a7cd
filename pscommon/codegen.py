"""Generates Python protobuf and gRPC code from protos/ (run by `make`, and by the image's build stage).

With `--stubs`, mypy-protobuf also writes typed stubs (.pyi) for the messages and the gRPC servicers and stubs,
so mypy checks every servicer method against its contract."""

import argparse
import pathlib
import shutil
import sys

import grpc_tools
from grpc_tools import protoc


def generate(proto_root: pathlib.Path, out: pathlib.Path, stubs: bool = False) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    protos = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{proto_root}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if stubs:
        bin_dir = pathlib.Path(sys.executable).parent
        args += [
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out=quiet:{out}",
            f"--mypy_grpc_out=quiet:{out}",
        ]
    if protoc.main([*args, *protos]) != 0:
        raise SystemExit("protoc failed")
    for module in out.rglob("*_pb2.py"):
        # Namespace packages would do at run time, but mypy needs the generated tree as regular packages.
        for folder in module.relative_to(out).parents[:-1]:
            (out / folder / "__init__.py").touch()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("protos", type=pathlib.Path)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--stubs", action="store_true", help="also write typed stubs with mypy-protobuf")
    args = ap.parse_args()
    generate(args.protos, args.out, args.stubs)
