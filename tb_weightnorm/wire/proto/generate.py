"""Regenerates plugin_data_pb2.py from plugin_data.proto.

Code from grpcio-tools 1.74 (protobuf 6.31.1 gencode) imports on every protobuf
that tensorflow and tensorboard 2.21 accept (>=6.31.1,<8); newer grpcio-tools
emit gencode that refuses protobuf 6.x. So the generator is pinned here, and the
generated file is committed.

Run: python -m tb_weightnorm.wire.proto.generate
"""

import pathlib
import sys

REQUIRED_GRPCIO_TOOLS = "1.74."


def main() -> int:
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        print("Install the pinned generator first: pip install 'grpcio-tools==1.74.*'")
        return 2
    from importlib.metadata import version

    found = version("grpcio-tools")
    if not found.startswith(REQUIRED_GRPCIO_TOOLS):
        print(f"grpcio-tools {found} found; install 'grpcio-tools==1.74.*' (see module docstring).")
        return 2
    here = pathlib.Path(__file__).resolve().parent
    root = here.parents[2]  # the repository: the proto is named by its path from there
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    return protoc.main(
        [
            "protoc",
            f"-I{root}",
            f"-I{include}",
            f"--python_out={root}",
            str(here.relative_to(root) / "plugin_data.proto"),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
