"""Attacks on the code sandbox, under every isolation layer that works here (bubblewrap and the
namespaces fallback). Each attack is bounded in time and count, and each must be stopped."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm import isolation
from swarm.config import Settings
from swarm.sandbox import SandboxConfig, run_code, sandbox_config
from tests.swarm.test_sandbox import _live_processes_with

REPO_DIR = Path(__file__).resolve().parents[2]
KINDS = ["bubblewrap", "namespaces"]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def kind(request: pytest.FixtureRequest) -> str:
    reason = await isolation.unavailable_reason(request.param, SandboxConfig())
    if reason is not None:
        how = "apt-get install bubblewrap" if request.param == "bubblewrap" else "unprivileged user namespaces and Landlock"
        pytest.skip(f"{request.param} is unavailable on this machine ({how} needed): {reason}")
    return request.param


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kind" in metafunc.fixturenames:
        metafunc.parametrize("kind", KINDS, indirect=True)


@pytest.fixture
def store() -> Iterator[Path]:
    """A swarm home outside /tmp (bubblewrap's /tmp is private anyway): a store with a secret and a sibling session."""
    home = Path(tempfile.mkdtemp(prefix="swarm-attack-", dir="/var/tmp")).resolve()
    (home / "swarm.db").write_text("STORE-SECRET principal sessions")
    (home / "sessions" / "other").mkdir(parents=True)
    (home / "sessions" / "other" / "notes.txt").write_text("SIBLING-SECRET")
    (home / "sessions" / "mine").mkdir()
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _config(store: Path, kind: str, **limits: object) -> SandboxConfig:
    return sandbox_config(Settings.from_env(env={"SWARM_MCP_HOME": str(store)}), isolation=kind, **limits)


async def test_server_secrets_are_not_readable(kind: str, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)  # the server's os.environ
    # A process holding the secret in its initial environment, as the server's /proc/<pid>/environ does.
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={"OPENAI_API_KEY": secret})
    try:
        code = (
            "import glob, os\n"
            "print(dict(os.environ))\n"
            f"for path in ['/proc/{server.pid}/environ', '/proc/{__import__('os').getpid()}/environ', f'/proc/{{os.getppid()}}/environ', *glob.glob('/proc/*/environ')]:\n"
            "    try:\n        print(path, open(path, 'rb').read())\n"
            "    except OSError as e:\n        print(path, 'denied', e.strerror)\n"
        )
        result = await run_code(code, "python", store / "sessions" / "mine", _config(store, kind))
    finally:
        server.kill()
        server.wait()
    assert result.isolation == kind and result.exit_code == 0, result.stderr
    assert secret not in result.stdout + result.stderr


async def test_the_store_and_other_sessions_are_not_readable(kind: str, store: Path) -> None:
    code = (
        "import os\n"
        f"for path in [{str(store / 'swarm.db')!r}, {str(store / 'sessions' / 'other' / 'notes.txt')!r}]:\n"
        "    try:\n        print(path, open(path).read())\n"
        "    except OSError as e:\n        print(path, 'denied', e.strerror)\n"
        f"for path in [{str(store)!r}, {str(store / 'sessions')!r}]:\n"
        "    try:\n        print(path, os.listdir(path))\n"
        "    except OSError as e:\n        print(path, 'denied', e.strerror)\n"
    )
    result = await run_code(code, "python", store / "sessions" / "mine", _config(store, kind))
    assert result.isolation == kind and result.exit_code == 0, result.stderr
    assert "STORE-SECRET" not in result.stdout and "SIBLING-SECRET" not in result.stdout
    assert "'other'" not in result.stdout and "swarm.db'" not in result.stdout


async def test_writes_land_only_in_the_work_dir(kind: str, store: Path) -> None:
    name = f"escape-{uuid.uuid4().hex}"
    targets = [store / "sessions" / "other" / name, store / name, Path("/var/tmp") / name, REPO_DIR / name,
               Path("/etc") / name, Path.home() / name, Path(sys.prefix) / name]
    code = (
        f"for path in {[str(t) for t in targets]!r} + ['inside.txt']:\n"
        "    try:\n        open(path, 'w').write('x')\n        print('WROTE', path)\n"
        "    except OSError as e:\n        print('REFUSED', path, e.strerror)\n"
        f"try:\n    open({str(store / 'swarm.db')!r}, 'a').write('tampered')\nexcept OSError as e:\n    print('REFUSED store', e.strerror)\n"
    )
    work = store / "sessions" / "mine"
    try:
        result = await run_code(code, "python", work, _config(store, kind))
    finally:  # a sandbox that failed must not leave litter in /etc or the repo
        escaped = [t for t in targets if t.exists()]
        for target in escaped:
            target.unlink()
    assert result.isolation == kind and result.exit_code == 0, result.stderr
    assert escaped == []
    assert (store / "swarm.db").read_text() == "STORE-SECRET principal sessions"
    assert "WROTE inside.txt" in result.stdout and (work / "inside.txt").read_text() == "x"


async def test_no_connection_to_the_host(kind: str, store: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = (
            "import socket\n"
            f"for host in ['127.0.0.1', 'localhost', '::1']:\n"
            "    try:\n"
            f"        socket.create_connection((host, {port}), timeout=1); print('CONNECTED', host)\n"
            "    except OSError as e:\n        print('blocked', host, e)\n"
        )
        result = await run_code(code, "python", store / "sessions" / "mine", _config(store, kind, timeout_seconds=10))
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert result.isolation == kind and result.exit_code == 0, result.stderr
    assert "CONNECTED" not in result.stdout


async def test_a_setsid_grandchild_does_not_outlive_the_run(kind: str, store: Path) -> None:
    token = f"escapee-{uuid.uuid4().hex}"
    marker = store / "sessions" / "mine" / "late.txt"
    code = (  # the grandchild writes the marker one second after the run has ended, if it survives
        "import subprocess, sys\n"
        "subprocess.Popen(['setsid', sys.executable, '-c', 'import sys, time; time.sleep(1); open(sys.argv[1], \"w\").write(\"alive\")',"
        f" {str(marker)!r}, {token!r}], start_new_session=True)\n"
        "print('spawned', flush=True)\n"
    )
    result = await run_code(code, "python", store / "sessions" / "mine", _config(store, kind, timeout_seconds=10))
    assert result.isolation == kind and result.exit_code == 0 and "spawned" in result.stdout, result.stderr
    assert not result.timed_out and result.duration_s < 1  # the run did not wait for the grandchild
    assert _live_processes_with(token) == []  # so it can never write the marker
    assert not marker.exists()


async def test_run_forever_is_stopped_with_its_whole_tree(kind: str, store: Path) -> None:
    token = f"forever-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen(['setsid', sys.executable, '-c', 'while True: pass', {token!r}])\n"
        "print('looping', flush=True)\n"
        "while True:\n    pass\n"
    )
    start = time.monotonic()
    result = await run_code(code, "python", store / "sessions" / "mine", _config(store, kind, timeout_seconds=2))
    assert result.isolation == kind and result.timed_out and "looping" in result.stdout
    assert time.monotonic() - start < 6
    assert _live_processes_with(token) == []


async def test_a_fork_bomb_is_capped(kind: str, store: Path) -> None:
    cap = 400  # the bomb stops by itself after this many forks
    code = (
        "import os, time\n"
        "forked = 0\n"
        f"for _ in range({cap}):\n"
        "    try:\n        pid = os.fork()\n    except OSError as e:\n        print('fork refused:', e.strerror); break\n"
        "    if pid == 0:\n        time.sleep(30); os._exit(0)\n"
        "    forked += 1\n"
        "print('forked', forked)\n"
    )
    result = await run_code(code, "python", store / "sessions" / "mine", _config(store, kind, timeout_seconds=20, max_processes=64))
    assert result.isolation == kind and not result.timed_out, result.stderr
    forked = int(result.stdout.split("forked ")[1].split()[0])
    assert "fork refused" in result.stdout and forked <= isolation.PID_MAX_MIN
    assert _live_processes_with(str(store)) == []


async def test_a_10_gb_allocation_fails(kind: str, store: Path) -> None:
    code = "try:\n    b = bytearray(10 * 2**30)\n    print('ALLOCATED', len(b))\nexcept MemoryError:\n    print('MemoryError')\n"
    result = await run_code(code, "python", store / "sessions" / "mine", _config(store, kind, memory_bytes=512 << 20, timeout_seconds=20))
    assert result.isolation == kind and result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "MemoryError"


async def test_a_1_gb_print_is_capped(kind: str, store: Path) -> None:
    cap = 64 * 1024
    code = "import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    result = await run_code(code, "python", store / "sessions" / "mine", _config(store, kind, max_output_bytes=cap, timeout_seconds=30))
    assert result.isolation == kind and result.exit_code == 0 and not result.timed_out, result.stderr
    assert result.truncated and len(result.stdout.encode()) == cap


async def test_a_cancelled_run_ends_its_whole_tree(kind: str, store: Path) -> None:
    token = f"cancelled-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen(['setsid', sys.executable, '-c', 'import time; time.sleep(60)', {token!r}])\n"
        "while True:\n    pass\n"
    )
    run = run_code(code, "python", store / "sessions" / "mine", _config(store, kind, timeout_seconds=30))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(run, 1.5)  # the caller gives up (cancellation) long before the run's own limit
    assert _live_processes_with(token) == []
