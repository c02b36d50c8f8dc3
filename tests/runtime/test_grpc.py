"""The gRPC runtime against real plugin processes: handshake, calls, host calls, limits,
supervision, shutdown, remote endpoints."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import grpc
import grpc.aio
import pytest

from goatkit_asgi._proto.goatkit.v1 import plugin_pb2 as pb
from goatkit_asgi._proto.goatkit.v1 import plugin_pb2_grpc as pb_grpc
from goatkit_asgi.errors import (
    PluginCallError,
    PluginCrashed,
    PluginLoadError,
    PluginTimeout,
)
from goatkit_asgi.packaging.manifest import load_manifest
from goatkit_asgi.runtime.grpc import GrpcRuntime
from goatkit_asgi.runtime.grpc_host import GrpcHost
from tests.fixtures.grpc_plugins import (
    HANDSHAKE,
    HELLO_GRPC,
    HOST_PROCESS,
    TESTPLUG,
    FakeHost,
    Server,
    alive,
    copy_plugin,
    request_user,
    wait_gone,
    write_manifest,
)

pytestmark = pytest.mark.anyio

MakeRuntime = Callable[..., Awaitable[GrpcRuntime]]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


async def _whoami(runtime: GrpcRuntime) -> dict[str, Any]:
    result = json.loads(await runtime.call("whoami", None, 5.0) or b"null")
    assert isinstance(result, dict)
    return result


async def _call(runtime: GrpcRuntime, function: str, args: Any = None, timeout: float = 5.0) -> Any:
    raw = None if args is None else json.dumps(args).encode()
    result = await runtime.call(function, raw, timeout)
    return None if result is None else json.loads(result)


# -- one running plugin for the tests that leave it intact -----------------------------------


@pytest.fixture(scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[GrpcRuntime, FakeHost]]:
    fake = FakeHost(grants={"testplug": {"granted_fn"}})
    host = GrpcHost(fake.host_call, fake.log)
    directory = copy_plugin(TESTPLUG, tmp_path_factory.mktemp("shared"))
    runtime = GrpcRuntime(load_manifest(directory), host)
    try:
        yield runtime, fake
    finally:
        await runtime.close()
        await host.close()


async def test_handshake_success_starts_the_process_with_a_minimal_environment(
    shared: tuple[GrpcRuntime, FakeHost],
) -> None:
    runtime, _fake = shared
    assert runtime.instance_count == 0  # lazy: nothing runs before the first call
    info = await _whoami(runtime)
    pid = info["pid"]
    assert runtime.pid == pid and alive(pid) and runtime.instance_count == 1
    env = info["env"]
    assert set(env) == {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "GOATKIT_PLUGIN",
        "GOATKIT_PLUGIN_NAME",
        "MALLOC_ARENA_MAX",
    }
    assert env["GOATKIT_PLUGIN"] == "goatkit-v1"
    assert env["GOATKIT_PLUGIN_NAME"] == "testplug"
    home = Path(env["HOME"])
    assert runtime.host.root is not None and home.parent == runtime.host.root
    assert home.stat().st_mode & 0o777 == 0o700
    assert runtime.host.root.stat().st_mode & 0o777 == 0o700
    assert Path(info["cwd"]) == runtime.manifest.directory
    assert info["config"] == {"greeting": "Hello", "days": 7}
    # its own process group, and the address-space cap from resources.memory_mb
    assert os.getpgid(pid) == pid
    limits = Path(f"/proc/{pid}/limits").read_text()
    line = next(row for row in limits.splitlines() if row.startswith("Max address space"))
    assert line.split()[3] == str(512 * 1024 * 1024)
    assert runtime.memory_bytes() > 10 * 1024 * 1024
    assert runtime.inline_functions() == frozenset()


async def test_register_returns_the_registration_json(
    shared: tuple[GrpcRuntime, FakeHost],
) -> None:
    runtime, _fake = shared
    registration = json.loads(await runtime.register(5.0))
    assert registration["name"] == "testplug"
    assert {
        "name": "big",
        "args": ["n"],
        "returns": "json",
        "description": 'Returns {"data": "x" * n}.',
    } in registration["functions"]
    assert registration["routes"] == [
        {"method": "GET", "path": "/testplug/{name}", "handler": "page", "description": ""}
    ]
    assert registration["hooks"] == [{"name": "after_save", "handler": "after_save", "priority": 0}]


async def test_calls_with_large_payloads(shared: tuple[GrpcRuntime, FakeHost]) -> None:
    runtime, _fake = shared
    blob = "é" * (4 * 1024 * 1024)  # 8 MiB of UTF-8: twice gRPC's default message limit
    assert await _call(runtime, "echo", {"blob": blob}) == {"blob": blob}
    result = await _call(runtime, "big", {"n": 20 * 1024 * 1024}, timeout=20.0)
    assert len(result["data"]) == 20 * 1024 * 1024
    # no args at all differs from {}
    assert await runtime.call("echo", None, 5.0) == b"{}"
    assert await runtime.call("echo_sync", b"{}", 5.0) == b"{}"


async def test_plugin_errors_become_plugin_call_errors_with_their_code(
    shared: tuple[GrpcRuntime, FakeHost],
) -> None:
    runtime, _fake = shared
    with pytest.raises(
        PluginCallError, match=r"^testplug: fail failed: something was wrong$"
    ) as info:
        await runtime.call("fail", None, 5.0)
    assert info.value.code == "bad_input" and info.value.function == "fail"
    with pytest.raises(
        PluginCallError, match=r"testplug: oops failed: oops: KeyError: 'nope'"
    ) as info:
        await runtime.call("oops", None, 5.0)
    assert info.value.code == "plugin_error"
    with pytest.raises(PluginCallError, match="testplug has no function 'nothing'") as info:
        await runtime.call("nothing", None, 5.0)
    assert info.value.code == "unknown_function"
    with pytest.raises(PluginCallError, match="missing a required argument: 'n'") as info:
        await runtime.call("big", b"{}", 5.0)
    assert info.value.code == "bad_input"
    with pytest.raises(
        PluginCallError,
        match=r"RuntimeError: testplug: host.call\(\) would block the event loop; use `await plugin.host.acall\('echo_args', ...\)` in async handlers",
    ):
        await runtime.call("blocking_host_call", None, 5.0)
    stats = runtime.stats.snapshot()
    assert stats["fail"]["errors"] == {"bad_input": 1}
    assert stats["oops"]["errors"] == {"plugin_error": 1}


async def test_host_calls_with_and_without_grant(shared: tuple[GrpcRuntime, FakeHost]) -> None:
    runtime, fake = shared
    # from a plain handler (worker thread) ...
    allowed = await _call(runtime, "host", {"method": "granted_fn", "args": {"x": 1}})
    assert allowed["result"]["plugin"] == "testplug"
    assert allowed["result"]["args"] == {"x": 1}
    denied = await _call(runtime, "host", {"method": "db_query", "args": {"query": "SELECT 1"}})
    assert denied["failed"] == {
        "type": "CapabilityDenied",
        "code": "capability_denied",
        "message": "testplug: db_query is not granted",
    }
    failed = await _call(runtime, "host", {"method": "broken"})
    assert failed["failed"]["type"] == "HostCallError"
    assert failed["failed"]["code"] == "backend_down"
    # ... and from an async handler, where an uncaught refusal fails the call with its code
    assert (await _call(runtime, "ahost", {"method": "granted_fn"}))["result"]["function"] == (
        "granted_fn"
    )
    with pytest.raises(PluginCallError, match="testplug: db_exec is not granted") as info:
        await _call(runtime, "ahost", {"method": "db_exec", "args": {}})
    assert info.value.code == "capability_denied"
    assert [c["function"] for c in fake.calls[-5:]] == [
        "granted_fn",
        "db_query",
        "broken",
        "granted_fn",
        "db_exec",
    ]


async def test_host_calls_get_the_rest_of_the_call_time_and_the_callers_context(
    shared: tuple[GrpcRuntime, FakeHost],
) -> None:
    runtime, fake = shared
    token = request_user.set("ada")
    try:
        result = await _call(runtime, "ahost", {"method": "echo_args"}, timeout=3.0)
    finally:
        request_user.reset(token)
    assert result["result"]["user"] == "ada"
    assert 2.5 < result["result"]["left"] <= 3.0
    # a host call that outlives the plugin call's limit is cut off at that limit: the host
    # answers "timeout" just before the call's own deadline passes (either may be seen first)
    t0 = time.monotonic()
    with pytest.raises(PluginCallError) as info:
        await _call(runtime, "ahost", {"method": "slow"}, timeout=0.5)
    assert info.value.code == "timeout"
    assert time.monotonic() - t0 < 1.5
    assert fake.calls[-1]["function"] == "slow" and fake.calls[-1]["left"] <= 0.5


async def test_host_service_refuses_forged_or_missing_tokens(
    shared: tuple[GrpcRuntime, FakeHost], caplog: pytest.LogCaptureFixture
) -> None:
    runtime, fake = shared
    await _whoami(runtime)
    before = len(fake.calls)
    async with grpc.aio.insecure_channel(runtime.host.address) as channel:
        stub = pb_grpc.HostStub(channel)
        request = pb.HostCallRequest(method="echo_args", args_json=b"{}")
        for metadata, word in (
            ((("x-goatkit-token", "forged-" + "x" * 36),), "unknown"),
            ((), "missing"),
            ((("x-goatkit-token", ""),), "missing"),
        ):
            reply = await stub.Call(request, metadata=metadata, timeout=5)
            assert reply.error.code == "unauthenticated"
            assert reply.error.message.startswith(f"Host.Call 'echo_args': {word} x-goatkit-token")
            assert not reply.result_json
    assert len(fake.calls) == before  # nothing reached the host functions
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3 and "gRPC Host.Call 'echo_args'" in refused[0]


async def test_deadline_exceeded_on_a_sleeping_plugin(shared: tuple[GrpcRuntime, FakeHost]) -> None:
    runtime, _fake = shared
    pid = (await _whoami(runtime))["pid"]
    for function in ("sleep", "asleep"):
        t0 = time.monotonic()
        with pytest.raises(
            PluginTimeout,
            match=rf"^testplug: {function} did not finish within its limit of 0.3s; make it "
            "faster or raise resources.call_timeout$",
        ) as info:
            await _call(runtime, function, {"seconds": 3}, timeout=0.3)
        assert 0.3 <= time.monotonic() - t0 < 1.0
        assert info.value.plugin == "testplug" and info.value.function == function
    # the process is still the same and answers at once
    assert (await _whoami(runtime))["pid"] == pid
    assert runtime.stats.snapshot()["sleep"]["timeouts"] == 1


# -- one plugin per test: crashes, limits, shutdown --------------------------------------------


@pytest.fixture
async def make_runtime(tmp_path: Path) -> AsyncIterator[MakeRuntime]:
    made: list[tuple[GrpcRuntime, GrpcHost]] = []

    async def make(
        source: Path = TESTPLUG, fake: FakeHost | None = None, **kwargs: Any
    ) -> GrpcRuntime:
        manifest_keys = kwargs.pop("manifest", {})
        fake = fake or FakeHost()
        host = GrpcHost(fake.host_call, fake.log)
        directory = copy_plugin(source, tmp_path / f"r{len(made)}", **manifest_keys)
        runtime = GrpcRuntime(load_manifest(directory), host, **kwargs)
        made.append((runtime, host))
        return runtime

    yield make
    for runtime, host in made:
        await runtime.close()
        await host.close()


async def test_sigkill_of_the_plugin_process_then_the_next_call_restarts_it(
    make_runtime: MakeRuntime,
) -> None:
    fake = FakeHost()
    runtime = await make_runtime(fake=fake)
    first = (await _whoami(runtime))["pid"]
    os.kill(first, signal.SIGKILL)
    assert await wait_gone(first)
    await anyio.sleep(0.05)  # the runtime sees the exit
    assert runtime.instance_count == 0
    second = (await _whoami(runtime))["pid"]
    assert second != first and alive(second)
    assert runtime.restarts == 1
    assert fake.logged("the plugin process was killed by SIGKILL")
    assert await _call(runtime, "echo", {"again": True}) == {"again": True}


async def test_in_flight_calls_fail_with_plugin_crashed_when_the_process_dies(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime()
    pid = (await _whoami(runtime))["pid"]
    errors: list[BaseException] = []

    async def sleeper() -> None:
        try:
            await _call(runtime, "sleep", {"seconds": 30}, timeout=30.0)
        except PluginCrashed as exc:
            errors.append(exc)

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(sleeper)
        await anyio.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
    assert time.monotonic() - t0 < 2.0
    assert len(errors) == 3
    assert str(errors[0]) == (
        "testplug: sleep failed: the plugin process was killed by SIGKILL; it is restarted on "
        "the next call (see the plugin log)"
    )
    # a crash in the middle of a call is counted once, not once per call
    assert runtime.stats.snapshot()["sleep"]["errors"] == {"crashed": 3}
    assert (await _whoami(runtime))["pid"] != pid


async def test_a_process_that_exits_during_a_call_fails_that_call(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime()
    with pytest.raises(
        PluginCrashed,
        match=r"^testplug: crash failed: the plugin process exited with code 9; it is restarted",
    ):
        await _call(runtime, "crash", {"code": 9})
    assert await _call(runtime, "echo", {"a": 1}) == {"a": 1}


async def test_too_many_crashes_mark_the_plugin_failed(make_runtime: MakeRuntime) -> None:
    failures: list[PluginLoadError] = []
    runtime = await make_runtime(max_crashes=2, crash_window=60.0, on_failed=failures.append)
    pids = []
    for _ in range(3):
        pids.append((await _whoami(runtime))["pid"])
        with pytest.raises(PluginCrashed):
            await _call(runtime, "crash", {"code": 1})
    assert len(set(pids)) == 3
    message = (
        "testplug: the plugin process crashed 3 times within 60s (last: exited with code 1) "
        "and is no longer restarted; fix the plugin, then load it again (platform.load or the "
        "admin's Load button)"
    )
    assert [str(f) for f in failures] == [message]
    with pytest.raises(PluginLoadError, match=r"crashed 3 times within 60s") as info:
        await runtime.call("echo", b"{}", 5.0)
    assert info.value is failures[0]
    with pytest.raises(PluginLoadError):
        await runtime.register(5.0)
    assert runtime.instance_count == 0
    for pid in pids:
        assert await wait_gone(pid)


async def test_restarts_back_off_exponentially(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime(backoff_initial=0.25, backoff_max=1.0)
    await _whoami(runtime)
    with pytest.raises(PluginCrashed):
        await _call(runtime, "crash")
    # a call whose limit is shorter than the wait is refused at once, not delayed
    with pytest.raises(
        PluginCrashed, match=r"is being restarted after a crash, in 0\.\d+s; retry then"
    ):
        await runtime.call("echo", b"{}", 0.1)
    t0 = time.monotonic()
    await _whoami(runtime)
    assert time.monotonic() - t0 >= 0.15
    with pytest.raises(PluginCrashed):
        await _call(runtime, "crash")
    t0 = time.monotonic()
    await _whoami(runtime)
    assert time.monotonic() - t0 >= 0.45  # the second crash in the window waits twice as long


async def test_an_unresponsive_process_is_killed_and_restarted(make_runtime: MakeRuntime) -> None:
    fake = FakeHost()
    runtime = await make_runtime(fake=fake, health_interval=0.1, health_timeout=0.2)
    pid = (await _whoami(runtime))["pid"]
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(PluginCrashed, match="stopped answering health checks and was killed"):
        await _call(runtime, "echo", {}, timeout=20.0)
    assert time.monotonic() - t0 < 3.0  # not the 20 s deadline
    assert await wait_gone(pid)
    assert fake.logged("failed two health checks in a row; killing it")
    assert (await _whoami(runtime))["pid"] != pid


async def test_a_memory_hog_is_stopped_at_its_cap_without_harming_the_host(
    make_runtime: MakeRuntime,
) -> None:
    fake = FakeHost()
    runtime = await make_runtime(fake=fake)  # resources.memory_mb: 512
    pid = (await _whoami(runtime))["pid"]
    host_rss = _rss(os.getpid())
    assert await _call(runtime, "hog", {"mb": 64}) == {"allocated": 64}  # under the cap: fine
    with pytest.raises(PluginCrashed, match="the plugin process exited with code 70"):
        await _call(runtime, "hog", {"mb": 1024}, timeout=20.0)
    assert await wait_gone(pid)
    assert fake.logged("testplug: out of memory in hog (the process's memory cap); exiting")
    assert _rss(os.getpid()) - host_rss < 50 * 1024 * 1024
    assert await _call(runtime, "echo", {"ok": 1}) == {"ok": 1}


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_close_leaves_no_processes_and_no_socket_files(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime()
    info = await _whoami(runtime)
    child = (await _call(runtime, "spawn_child"))["pid"]
    conn = runtime._conn
    assert conn is not None and conn.process is not None and conn.process.handshake is not None
    socket = Path(conn.process.handshake.address)
    workdir = Path(info["env"]["HOME"])
    assert socket.is_socket() and socket.is_relative_to(workdir) and alive(child)
    host_root = runtime.host.root
    assert host_root is not None and (host_root / "host.sock").is_socket()
    t0 = time.monotonic()
    await runtime.close()
    assert time.monotonic() - t0 < 1.5  # Shutdown was enough: no SIGTERM/SIGKILL wait
    assert not alive(info["pid"])
    assert await wait_gone(child)  # the plugin's own child went with it
    assert not socket.exists() and not workdir.exists()
    assert runtime.instance_count == 0
    with pytest.raises(PluginCallError, match="the plugin was unloaded") as exc:
        await runtime.call("echo", b"{}", 5.0)
    assert exc.value.code == "unloaded"
    await runtime.host.close()
    assert not host_root.exists()


async def test_close_ends_a_process_that_ignores_shutdown_and_sigterm(
    make_runtime: MakeRuntime,
) -> None:
    runtime = await make_runtime(shutdown_grace=0.3)
    pid = (await _whoami(runtime))["pid"]
    with pytest.raises(PluginTimeout):
        await _call(runtime, "wedge", timeout=0.3)
    t0 = time.monotonic()
    await runtime.close()
    elapsed = time.monotonic() - t0
    assert not alive(pid)
    assert 0.5 < elapsed < 3.0  # drain + Shutdown + grace, SIGTERM + grace, then SIGKILL


async def test_close_lets_calls_in_flight_finish(make_runtime: MakeRuntime) -> None:
    runtime = await make_runtime()
    await _whoami(runtime)
    results: list[Any] = []

    async def slow() -> None:
        results.append(await _call(runtime, "asleep", {"seconds": 0.3}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        await anyio.sleep(0.1)
        await runtime.close()
    assert results == [{"slept": True}]


async def test_a_killed_host_leaves_no_plugin_process_behind(tmp_path: Path) -> None:
    directory = copy_plugin(TESTPLUG, tmp_path)
    host = subprocess.Popen(
        [sys.executable, str(HOST_PROCESS), str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=HOST_PROCESS.parents[3],
    )
    try:
        assert host.stdout is not None
        started = json.loads(host.stdout.readline())
        pid, root = started["pid"], Path(started["root"])
        assert alive(pid) and root.is_dir()
        host.send_signal(signal.SIGKILL)
        host.wait()
        assert await wait_gone(pid, 3.0), "the plugin outlived its host"
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        assert host.stdout is not None
        host.stdout.close()
    # nobody could remove the killed host's directory; the next host to start does
    assert root.is_dir()
    fake = FakeHost()
    other = GrpcHost(fake.host_call, fake.log)
    try:
        await other.start()
        assert not root.exists()
    finally:
        await other.close()


# -- handshake failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (
            "silent",
            r"^bad: the plugin process exited with code 0 before printing its handshake line; "
            "see the plugin log$",
        ),
        (
            "exit",
            r"^bad: the plugin process exited with code 3 before printing its handshake line "
            r"\(last stderr line: 'plugin: cannot open its database'\); see the plugin log$",
        ),
        (
            "garbage",
            r"^bad: bad handshake line 'hello, I am a plugin': expected 5 fields separated by "
            r"'\|', got 1; the first line on stdout must be CORE-VERSION\|PROTOCOL-VERSION\|",
        ),
        (
            "version",
            r"^bad: bad handshake line '1\|2\|unix\|/tmp/nowhere.sock\|grpc': plugin protocol "
            r"version '2', but this host speaks goatkit protocol 1 \(goatkit.v1\); build the "
            "plugin against goatkit.v1, or upgrade the host$",
        ),
        (
            "remote-tcp",
            r"tcp address '10.1.2.3:5000' is not on the loopback interface; listen on "
            r"127.0.0.1:PORT",
        ),
        (
            "no-server",
            r"^bad: the plugin process does not answer health checks \(DEADLINE_EXCEEDED: .*\); "
            "it must serve grpc.health.v1.Health beside goatkit.v1.Plugin$",
        ),
        (
            "slow",
            r"^bad: the plugin process printed no handshake line within 1s of starting; a gRPC "
            r"plugin must print 1\|1\|unix\|/path.sock\|grpc on stdout",
        ),
    ],
)
async def test_handshake_failures_are_clear_errors_and_leave_no_process(
    tmp_path: Path, mode: str, message: str
) -> None:
    pidfile = tmp_path / "pid"
    directory = write_manifest(
        tmp_path / "bad",
        name="bad",
        runtime="grpc",
        command=["python", str(HANDSHAKE), mode, str(pidfile)],
    )
    fake = FakeHost()
    host = GrpcHost(fake.host_call, fake.log)
    runtime = GrpcRuntime(load_manifest(directory), host, start_timeout=1.0)
    try:
        t0 = time.monotonic()
        with pytest.raises(PluginLoadError, match=message):
            await runtime.call("echo", b"{}", 5.0)
        assert time.monotonic() - t0 < 3.0
        pid = int(pidfile.read_text())
        assert not alive(pid)
        assert host.root is not None and list(host.root.iterdir()) == [host.root / "host.sock"]
        assert runtime.instance_count == 0
    finally:
        await runtime.close()
        await host.close()


async def test_a_program_that_does_not_exist_is_a_load_error(tmp_path: Path) -> None:
    directory = write_manifest(tmp_path / "p", name="p", runtime="grpc", command=["./missing"])
    missing_cmd = write_manifest(
        tmp_path / "q", name="q", runtime="grpc", command=["no-such-program-here"]
    )
    fake = FakeHost()
    host = GrpcHost(fake.host_call, fake.log)
    try:
        with pytest.raises(PluginLoadError, match=r"^p: cannot start missing: it does not exist"):
            await GrpcRuntime(load_manifest(directory), host).register(5.0)
        with pytest.raises(
            PluginLoadError,
            match=r"^q: cannot start 'no-such-program-here': no such program on PATH",
        ):
            await GrpcRuntime(load_manifest(missing_cmd), host).call("x", None, 5.0)
    finally:
        await host.close()


# -- remote endpoints -----------------------------------------------------------------------------


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except (PluginCrashed, PluginCallError):
            if time.monotonic() > deadline:
                raise
            await anyio.sleep(0.1)


async def test_remote_endpoint_calls_reconnects_and_reinitialises(tmp_path: Path) -> None:
    server = Server()
    fake = FakeHost()
    host = GrpcHost(fake.host_call, fake.log)
    directory = write_manifest(
        tmp_path / "remote",
        name="remote",
        runtime="grpc",
        endpoint=f"127.0.0.1:{server.port}",
        config={"greeting": "Hi"},
    )
    runtime = GrpcRuntime(load_manifest(directory), host, health_interval=0.2)
    try:
        assert json.loads(await runtime.register(5.0))["name"] == "testplug"
        info = await _whoami(runtime)
        assert info["pid"] == server.proc.pid and info["config"] == {"greeting": "Hi"}
        assert runtime.memory_bytes() == 0 and runtime.pid is None
        assert runtime.instance_count == 1
        # host calls reach this host, as the plugin named in this host's manifest
        reply = await _call(runtime, "ahost", {"method": "echo_args"})
        assert reply["result"]["plugin"] == "remote"

        server.stop()
        with pytest.raises(
            PluginCrashed,
            match=r"^remote: whoami failed: the plugin service at 127.0.0.1:\d+ is unavailable",
        ):
            await _whoami(runtime)
        server = Server(port=server.port)
        # the channel reconnects by itself and sends Init again: host calls work with the token
        reply = await _until(lambda: _call(runtime, "ahost", {"method": "echo_args"}))
        assert reply["result"]["plugin"] == "remote"
        assert fake.logged("reconnected to 127.0.0.1:")

        await runtime.close()
        assert server.proc.poll() is None  # a remote service is not ours to stop
    finally:
        await runtime.close()
        await host.close()
        server.stop()


async def test_remote_endpoint_down_fails_fast_and_backs_off(tmp_path: Path) -> None:
    fake = FakeHost()
    host = GrpcHost(fake.host_call, fake.log)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = write_manifest(
        tmp_path / "down", name="down", runtime="grpc", endpoint=f"127.0.0.1:{port}"
    )
    runtime = GrpcRuntime(load_manifest(directory), host, start_timeout=0.3, backoff_initial=5.0)
    try:
        with pytest.raises(
            PluginLoadError, match="the plugin service at 127.0.0.1:\\d+ does not answer"
        ):
            await runtime.call("echo", b"{}", 5.0)
        t0 = time.monotonic()
        with pytest.raises(
            PluginCrashed, match=r"could not be reached .*; the next attempt is in 5\.0s"
        ):
            await runtime.call("echo", b"{}", 5.0)
        assert time.monotonic() - t0 < 0.1
    finally:
        await runtime.close()
        await host.close()


async def test_host_service_on_tcp_for_remote_plugins(tmp_path: Path) -> None:
    server = Server()
    fake = FakeHost()
    host = GrpcHost(fake.host_call, fake.log, listen="127.0.0.1:0")
    directory = write_manifest(
        tmp_path / "remote", name="remote", runtime="grpc", endpoint=f"127.0.0.1:{server.port}"
    )
    runtime = GrpcRuntime(load_manifest(directory), host)
    try:
        reply = await _call(runtime, "host", {"method": "echo_args"})
        assert reply["result"]["plugin"] == "remote"
        assert host.address.startswith("127.0.0.1:") and not host.address.endswith(":0")
    finally:
        await runtime.close()
        await host.close()
        server.stop()
    with pytest.raises(ValueError, match="listens on every interface: also give advertise="):
        GrpcHost(fake.host_call, fake.log, listen="0.0.0.0:7070")


async def test_remote_endpoint_with_mutual_tls(tmp_path: Path) -> None:
    certs = _make_certificates(tmp_path / "certs")
    directory = write_manifest(
        tmp_path / "secure",
        name="secure",
        runtime="grpc",
        endpoint="localhost:0",  # replaced below, once the server's port is known
    )
    for name in ("ca.pem", "client.pem", "client.key"):
        (directory / name).write_bytes((certs / name).read_bytes())
    server = Server(
        "--tls-cert",
        str(certs / "server.pem"),
        "--tls-key",
        str(certs / "server.key"),
        "--tls-client-ca",
        str(certs / "ca.pem"),
    )
    fake = FakeHost()
    host = GrpcHost(fake.host_call, fake.log)
    try:
        write_manifest(
            directory,
            name="secure",
            runtime="grpc",
            endpoint=f"localhost:{server.port}",
            tls={"ca": "ca.pem", "cert": "client.pem", "key": "client.key"},
        )
        runtime = GrpcRuntime(load_manifest(directory), host)
        assert await _call(runtime, "echo", {"tls": True}) == {"tls": True}
        await runtime.close()
        # without the client certificate the server refuses the connection
        write_manifest(
            directory,
            name="secure",
            runtime="grpc",
            endpoint=f"localhost:{server.port}",
            tls={"ca": "ca.pem"},
        )
        anonymous = GrpcRuntime(load_manifest(directory), host, start_timeout=1.0)
        with pytest.raises(PluginLoadError, match="does not answer health checks"):
            await anonymous.call("echo", b"{}", 5.0)
        await anonymous.close()
    finally:
        await host.close()
        server.stop()


def _make_certificates(directory: Path) -> Path:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir()
    now = datetime.datetime.now(datetime.UTC)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test CA"))
        .issuer_name(name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name("localhost" if who == "server" else "goatkit host"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (directory / f"{who}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{who}.key").write_bytes(key_pem(key))
    return directory


# -- the example plugin ----------------------------------------------------------------------------


async def test_hello_grpc_example_through_the_runtime(make_runtime: MakeRuntime) -> None:
    fake = FakeHost(grants={"hello-grpc": {"log", "cache_get", "cache_set"}})
    runtime = await make_runtime(HELLO_GRPC, fake=fake)
    registration = json.loads(await runtime.register(5.0))
    assert registration["routes"][0]["path"] == "/grpc-hello/{name}"
    assert registration["menu_items"][0]["label"] == "Hello (gRPC)"
    assert [f["name"] for f in registration["functions"]] == ["hello"]
    assert await _call(runtime, "hello", {"name": "Ada"}) == {"message": "Hello, Ada!"}
    assert fake.calls[-1]["function"] == "log"
    assert fake.calls[-1]["args"] == {"level": "info", "message": "greeting Ada"}
    assert await _call(runtime, "after_save", {"entity": "ticket"}) == {"seen": "ticket"}
