"""swarm.sandbox: code runs in a limited, secret-free child process (bubblewrap where it works)."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest
from autogen_core import CancellationToken

from swarm import isolation, sandbox
from swarm.config import Settings
from swarm.errors import ConfigError
from swarm.sandbox import SandboxConfig, bubblewrap_unavailable_reason, execute_code_tool, run_code, sandbox_config

REPO_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _bwrap_or_skip() -> None:
    reason = await bubblewrap_unavailable_reason()
    if reason is not None:
        pytest.skip(f"bubblewrap unavailable on this machine (apt-get install bubblewrap; needs user namespaces or root): {reason}")


def _live_processes_with(token: str) -> list[int]:
    """Host pids whose command line contains ``token`` and that are not zombies."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() not in (entry / "cmdline").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["none", "bubblewrap"])
async def test_busy_loop_and_forked_grandchild_are_killed_at_the_timeout(tmp_path: Path, mode: str) -> None:
    if mode == "bubblewrap":
        await _bwrap_or_skip()
    token = f"grandchild-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {token!r}])\n"
        "print('started', flush=True)\n"
        "while True:\n    pass\n"
    )
    start = time.monotonic()
    result = await run_code(code, "python", tmp_path, SandboxConfig(timeout_seconds=2, isolation=mode))
    assert result.timed_out
    assert result.exit_code == -9
    assert "started" in result.stdout
    assert 1.9 < time.monotonic() - start < 6
    assert _live_processes_with(token) == []


@pytest.mark.anyio
async def test_huge_output_is_capped_and_fast(tmp_path: Path) -> None:
    cap = 64 * 1024
    result = await run_code("print('x' * 100_000_000)", "python", tmp_path, SandboxConfig(max_output_bytes=cap, timeout_seconds=20))
    assert result.exit_code == 0 and not result.timed_out
    assert result.truncated
    assert len(result.stdout.encode()) == cap
    assert result.duration_s < 10


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["none", "auto"])
async def test_server_secrets_do_not_reach_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    for name in ("SWARM_TEST_SECRET", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SWARM_MCP_TOKEN"):
        monkeypatch.setenv(name, secret)
    result = await run_code("import os\nprint(dict(os.environ))", "python", tmp_path, SandboxConfig(isolation=mode))
    assert result.exit_code == 0, result.stderr
    assert secret not in result.stdout
    for name in ("SWARM_TEST_SECRET", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SWARM_MCP_TOKEN"):
        assert name not in result.stdout
    assert f"'HOME': '{tmp_path.resolve()}'" in result.stdout


@pytest.mark.anyio
async def test_bubblewrap_hides_the_server_process_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await _bwrap_or_skip()
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("SWARM_TEST_SECRET", secret)  # os.environ; /proc/<pid>/environ is the initial env
    code = f"try:\n    print(open('/proc/{os.getpid()}/environ').read())\nexcept OSError as e:\n    print('denied', e)\n"
    result = await run_code(code, "python", tmp_path, SandboxConfig(isolation="bubblewrap"))
    assert result.isolation == "bubblewrap"
    assert "denied" in result.stdout


@pytest.mark.anyio
async def test_bubblewrap_refuses_writes_outside_the_work_dir(tmp_path: Path) -> None:
    await _bwrap_or_skip()
    name = f"sandbox-escape-{uuid.uuid4().hex}"
    targets = [f"/etc/{name}", str(REPO_DIR / name), str(Path(sys.prefix) / name)]
    code = (
        "import sys\n"
        f"for path in {targets!r} + ['inside.txt']:\n"
        "    try:\n        open(path, 'w').write('x')\n        print('WROTE', path)\n"
        "    except OSError as e:\n        print('REFUSED', path, e.strerror)\n"
    )
    work = tmp_path / "work"
    result = await run_code(code, "python", work, SandboxConfig(isolation="bubblewrap"))
    assert result.isolation == "bubblewrap"
    assert result.exit_code == 0, result.stderr
    for target in targets:
        assert not Path(target).exists()  # nothing escaped to the real filesystem
        if not Path(target).is_relative_to(Path("/tmp").resolve()):  # under /tmp a write lands in the private tmpfs
            assert f"REFUSED {target}" in result.stdout
    assert "WROTE inside.txt" in result.stdout
    assert (work / "inside.txt").read_text() == "x"


@pytest.mark.anyio
async def test_auto_falls_back_to_namespaces_when_bwrap_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "BWRAP_BINARY", "/nonexistent/bwrap")
    if await isolation.unavailable_reason("namespaces", SandboxConfig()) is not None:
        pytest.skip("the namespaces isolation (unshare + Landlock) is unavailable on this machine")
    result = await run_code("print('hi')", "python", tmp_path, SandboxConfig(isolation="auto"))
    assert result.stdout == "hi\n"
    assert result.isolation == "namespaces"
    with pytest.raises(ConfigError, match="bubblewrap: '/nonexistent/bwrap' not found"):
        await run_code("print('hi')", "python", tmp_path, SandboxConfig(isolation="bubblewrap"))


@pytest.mark.anyio
async def test_without_any_isolation_code_is_refused_unless_the_operator_opts_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "BWRAP_BINARY", "/nonexistent/bwrap")
    monkeypatch.setattr(isolation, "UNSHARE_BINARY", "/nonexistent/unshare")
    with pytest.raises(ConfigError) as refused:
        await run_code("open('ran', 'w')", "python", tmp_path, SandboxConfig())
    message = str(refused.value)
    assert "no isolation layer works here" in message and "apt-get install bubblewrap" in message
    assert "user namespaces" in message and "SWARM_MCP_SANDBOX=none" in message
    assert not (tmp_path / "ran").exists()
    report = await execute_code_tool(tmp_path).run_json({"code": "open('ran', 'w')", "language": "python"}, CancellationToken())
    assert report.startswith("error: code was not run: no isolation layer works here") and not (tmp_path / "ran").exists()
    opted_in = await run_code("print('ran')", "python", tmp_path, SandboxConfig(isolation="none"))
    assert opted_in.stdout == "ran\n" and opted_in.isolation == "none (operator opt-in: rlimits only)"


def test_the_operator_chooses_the_sandbox_in_settings(tmp_path: Path) -> None:
    assert Settings.from_env(env={"SWARM_MCP_HOME": str(tmp_path)}).sandbox == "auto"
    settings = Settings.from_env(env={"SWARM_MCP_HOME": str(tmp_path), "SWARM_MCP_SANDBOX": "None"})
    config = sandbox_config(settings)
    assert config.isolation == "none" and str(tmp_path) in config.hidden_paths  # the store is hidden from code
    with pytest.raises(ConfigError, match="SWARM_MCP_SANDBOX must be auto, bubblewrap, namespaces or none"):
        Settings.from_env(env={"SWARM_MCP_HOME": str(tmp_path), "SWARM_MCP_SANDBOX": "off"})


@pytest.mark.anyio
async def test_python_error_gives_nonzero_exit_and_traceback(tmp_path: Path) -> None:
    result = await run_code("def f():\n    raise ValueError('boom')\nf()\n", "python", tmp_path)
    assert result.exit_code == 1
    assert not result.timed_out
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: boom" in result.stderr
    assert Path(result.code_path).parent == (tmp_path / "code").resolve()


@pytest.mark.anyio
async def test_bash_runs_in_the_work_dir(tmp_path: Path) -> None:
    result = await run_code("echo hello; pwd; echo oops >&2; exit 3", "bash", tmp_path)
    assert result.exit_code == 3
    assert result.stdout.splitlines() == ["hello", str(tmp_path.resolve())]
    assert result.stderr == "oops\n"
    assert result.code_path.endswith(".sh")


@pytest.mark.anyio
async def test_function_tool_runs_code_and_reports(tmp_path: Path) -> None:
    tool = execute_code_tool(tmp_path, SandboxConfig(timeout_seconds=10))
    assert tool.name == "execute_code"
    assert set(tool.schema["parameters"]["properties"]) == {"code", "language"}
    report = await tool.run_json({"code": "print(6 * 7)", "language": "python"}, CancellationToken())
    assert isinstance(report, str)
    assert "exit_code: 0" in report and "timed_out: False" in report and "isolation: " in report
    assert "42" in report
    report = await tool.run_json({"code": "echo from-bash", "language": "bash"}, CancellationToken())
    assert "from-bash" in report


@pytest.mark.anyio
async def test_function_tool_rejects_unsupported_language(tmp_path: Path) -> None:
    tool = execute_code_tool(tmp_path)
    report = await tool.run_json({"code": "puts 1", "language": "ruby"}, CancellationToken())
    assert "unsupported language 'ruby'" in report
    assert "python" in report and "bash" in report
    assert not (tmp_path / "code").exists()


@pytest.mark.anyio
async def test_function_tool_reports_a_start_failure_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.sys, "executable", "/nonexistent/python")
    tool = execute_code_tool(tmp_path, SandboxConfig(isolation="none"))
    report = await tool.run_json({"code": "print(1)", "language": "python"}, CancellationToken())
    assert report.startswith("error: the code could not be started")
    assert "/nonexistent/python" in report
