"""Benchmark of the gRPC runtime (DESIGN §8): a plugin call through :class:`GrpcRuntime` vs a raw
``grpc.aio`` unary ``Plugin.Call`` to the same plugin process, with the same ~115-byte payload.

Both sides make the same RPC to the same server, so the ratio is the runtime's own cost: call
scope and metadata for host calls, statistics, error translation. Rounds alternate between the
two, and the figures are medians.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import grpc
import grpc.aio

from goatkit_asgi._proto.goatkit.v1 import plugin_pb2 as pb
from goatkit_asgi._proto.goatkit.v1 import plugin_pb2_grpc as pb_grpc
from goatkit_asgi.packaging.manifest import load_manifest
from goatkit_asgi.runtime.grpc import GrpcRuntime
from goatkit_asgi.runtime.grpc_host import CHANNEL_OPTIONS, GrpcHost

from .runtime import PAYLOAD, Row, _us

# An echo plugin on the Python SDK; async, so neither side pays for a thread hand-off.
ECHO_PLUGIN = """
from goatkit_asgi.sdk.python import Plugin

plugin = Plugin("grpc-echo", version="1.0.0")


@plugin.function
async def echo(**args):
    return args


if __name__ == "__main__":
    plugin.serve()
"""
ECHO_MANIFEST = """
name: grpc-echo
runtime: grpc
command: ["python", "plugin.py"]
"""
TIMEOUT = 5.0


async def _noop_host_call(plugin: str, function: str, args: bytes, deadline: float) -> bytes:
    return b"null"


def _no_log(plugin: str, level: str, message: str) -> None:
    pass


async def _per_call(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - t0) / calls


async def bench_grpc_call(calls: int, rounds: int) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "grpc-echo"
        directory.mkdir()
        (directory / "plugin.py").write_text(ECHO_PLUGIN)
        (directory / "manifest.yaml").write_text(ECHO_MANIFEST)
        host = GrpcHost(_noop_host_call, _no_log)
        runtime = GrpcRuntime(load_manifest(directory), host)
        try:
            assert await runtime.call("echo", PAYLOAD, TIMEOUT) == PAYLOAD
            conn = runtime._conn
            assert conn is not None and conn.process is not None
            assert conn.process.handshake is not None
            async with grpc.aio.insecure_channel(
                conn.process.handshake.target, options=CHANNEL_OPTIONS
            ) as channel:
                stub = pb_grpc.PluginStub(channel)

                async def raw() -> bytes:
                    request = pb.CallRequest(
                        function="echo", args_json=PAYLOAD, timeout_seconds=TIMEOUT
                    )
                    reply = await stub.Call(request, timeout=TIMEOUT)
                    return bytes(reply.result_json)

                async def ours() -> bytes | None:
                    return await runtime.call("echo", PAYLOAD, TIMEOUT)

                assert await raw() == PAYLOAD
                for _ in range(calls // 4):  # warm both paths
                    await raw()
                    await ours()
                ours_s, raw_s = [], []
                for _ in range(rounds):
                    ours_s.append(await _per_call(ours, calls))
                    raw_s.append(await _per_call(raw, calls))
        finally:
            await runtime.close()
            await host.close()
    mine, base = statistics.median(ours_s), statistics.median(raw_s)
    ratio = mine / base
    return Row(
        "grpc-call",
        f"gRPC plugin call, JSON echo ({len(PAYLOAD)} B)",
        _us(mine),
        f"raw grpc.aio unary {_us(base)}",
        f"{ratio:.2f}×",
        "≤ 1.20×",
        ratio <= 1.2,
    )


def run(quick: bool = False) -> list[Row]:
    calls, rounds = (200, 5) if quick else (1000, 15)
    return [anyio.run(bench_grpc_call, calls, rounds)]
