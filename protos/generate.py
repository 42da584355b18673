"""Regenerates the Python gRPC code in gateway/api/ from protos/ (``make protos``).

grpc_tools writes absolute imports (``from tollgate.v1 import common_pb2``) that only resolve
when the output folder is a top-level package; they are rewritten to relative imports so the
generated modules live inside the ``gateway.api`` package.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
OUTPUT_DIR = PROTO_ROOT.parent / "gateway" / "api"
PACKAGE_DIR = "tollgate/v1"
_ABSOLUTE_IMPORT = re.compile(r"^from tollgate\.v1 import (\w+)", re.MULTILINE)


def generate(output_dir: Path = OUTPUT_DIR) -> list[Path]:
    """Runs protoc on every .proto under protos/tollgate/v1 and returns the files it wrote."""
    output_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    grpc_include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{grpc_include}",
        f"--python_out={output_dir}",
        f"--pyi_out={output_dir}",
        f"--grpc_python_out={output_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in sorted((output_dir / PACKAGE_DIR).glob("*.py*")):
        target = output_dir / path.name
        target.write_text(_ABSOLUTE_IMPORT.sub(r"from . import \1", path.read_text()))
        written.append(target)
        path.unlink()
    for folder in (output_dir / PACKAGE_DIR, output_dir / "tollgate"):
        folder.rmdir()
    (output_dir / "__init__.py").write_text('"""Generated from protos/tollgate/v1 by `make protos`; do not edit."""\n')
    return written


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT_DIR):
        print(path)
