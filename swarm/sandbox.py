"""Sandboxed code execution for the engineer agent.

Code never runs inside the server process: it is written to a file in the session's work dir and
run by a child process (``sys.executable`` or bash) in a new session/process group, with
resource limits (``setrlimit``), a minimal allow-listed environment (no server secrets), a wall
clock timeout that SIGKILLs the whole process group, and captured output capped per stream.

The child also runs inside an isolation layer (``swarm.isolation``): bubblewrap, or Linux
namespaces with Landlock where bubblewrap is missing. Either one hides the server's environment
and files, the store and other sessions' work dirs, blocks the network, allows writes only to the
work dir and ends every process of the run with it. Where neither works, code does not run unless
the operator opted in (``isolation="none"``, ``SWARM_MCP_SANDBOX=none``).
``ExecutionResult.isolation`` always says which layer ran.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

from autogen_core import CancellationToken
from autogen_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from . import isolation
from .errors import ConfigError, UserInputError
from .isolation import IsolationKind

if TYPE_CHECKING:
    from .config import Settings

logger = logging.getLogger("swarm.sandbox")

Language = Literal["python", "bash"]
_SUFFIXES: dict[str, str] = {"python": ".py", "bash": ".sh"}
_END_GRACE_S = 5.0  # how long a killed namespace may take to empty before its layer process is killed too
_DRAIN_GRACE_S = 2.0  # after the child is gone, how long to wait for a pipe held by an escaped process
_TAIL_CHARS = 4000  # per stream, in the report fed back to the model
_snippet_counter = itertools.count(1)


class SandboxConfig(BaseModel):
    """Limits and isolation for one ``run_code`` call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_seconds: float = Field(60.0, gt=0, description="Wall-clock limit; the whole process tree is SIGKILLed after it.")
    max_output_bytes: int = Field(64 * 1024, ge=1, description="Bytes of stdout and of stderr kept (each); the rest is read and discarded.")
    cpu_seconds: int | None = Field(60, ge=1, description="RLIMIT_CPU (CPU seconds per process); None = no limit.")
    memory_bytes: int | None = Field(1 << 30, ge=1 << 24, description="RLIMIT_AS (address space per process); None = no limit.")
    max_file_bytes: int | None = Field(64 << 20, ge=0, description="RLIMIT_FSIZE (largest file a process may write); None = no limit.")
    max_processes: int | None = Field(
        256, ge=1, description="Processes at once: the PID namespace's pid_max (the kernel allows no less than 301) and, when not root, RLIMIT_NPROC (root ignores it)."
    )
    isolation: IsolationKind = Field(
        "auto", description="auto: bubblewrap, else namespaces (unshare + Landlock), else refuse; bubblewrap / namespaces: that one or refuse; none: rlimits only (operator opt-in)."
    )
    allow_network: bool = Field(False, description="Share the host network (default: no network at all).")
    hidden_paths: tuple[str, ...] = Field(
        ("/root", "/home", "/run/secrets"), description="Directories replaced by an empty tmpfs (the work dir and the interpreter are re-exposed)."
    )
    extra_env: dict[str, str] = Field(default_factory=dict, description="Variables explicitly added to the child's minimal environment.")


class ExecutionResult(BaseModel):
    """What happened when a snippet ran."""

    exit_code: int = Field(description="Exit code; negative = killed by that signal (-9 on timeout); under bubblewrap a signal death inside shows as 128+signal.")
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool = Field(description="True if stdout or stderr exceeded max_output_bytes and was cut.")
    duration_s: float
    isolation: str = Field(description="The layer that ran: 'bubblewrap', 'namespaces' or 'none (operator opt-in: rlimits only)'.")
    code_path: str = Field(description="Where the snippet was saved.")


async def bubblewrap_unavailable_reason(config: SandboxConfig | None = None) -> str | None:
    """None if bubblewrap works here with ``config``'s flags, else why not. Probed once per process."""
    return await isolation.unavailable_reason("bubblewrap", config or SandboxConfig())


def sandbox_config(settings: "Settings", **overrides: object) -> SandboxConfig:
    """The operator's sandbox (SWARM_MCP_SANDBOX) for sessions of ``settings``: the store's directory is hidden too."""
    hidden = [*SandboxConfig.model_fields["hidden_paths"].default, str(settings.home)]
    if settings.db_url.startswith("sqlite"):
        db_file = settings.db_url.split(":///", 1)[-1].split("?", 1)[0]
        if db_file and db_file != ":memory:":
            hidden.append(str(Path(db_file).parent))
    values: dict[str, object] = {"isolation": settings.sandbox, "hidden_paths": tuple(dict.fromkeys(hidden))}
    values.update(overrides)
    return SandboxConfig(**values)  # type: ignore[arg-type]


# --- process setup ----------------------------------------------------------------------------


def _rlimits(config: SandboxConfig) -> Callable[[], None]:
    """A preexec_fn applying the limits; values are computed here, in the parent."""
    wanted: list[tuple[int, int | None]] = [
        (resource.RLIMIT_CPU, config.cpu_seconds),
        (resource.RLIMIT_AS, config.memory_bytes),
        (resource.RLIMIT_FSIZE, config.max_file_bytes),
        (resource.RLIMIT_CORE, 0),
    ]
    if os.geteuid() != 0:
        wanted.append((resource.RLIMIT_NPROC, config.max_processes))
    limits: list[tuple[int, tuple[int, int]]] = []
    for which, value in wanted:
        if value is not None:  # CPU: SIGXCPU at the soft limit, SIGKILL one second later (hard limit)
            hard = resource.getrlimit(which)[1]
            pair = [value, value + 1 if which == resource.RLIMIT_CPU else value]
            limits.append((which, (pair[0], pair[1]) if hard == resource.RLIM_INFINITY else (min(pair[0], hard), min(pair[1], hard))))

    def apply() -> None:
        for which, pair in limits:
            resource.setrlimit(which, pair)

    return apply


def _child_env(work_dir: Path, tmp_dir: Path, config: SandboxConfig) -> dict[str, str]:
    """Allow-list only: nothing of the server's environment (API keys, tokens) is inherited."""
    path = os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]))
    env = {
        "PATH": path,
        "HOME": str(work_dir),
        "TMPDIR": str(tmp_dir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "TERM": "dumb",
    }
    env.update(config.extra_env)
    return env


def _write_snippet(work_dir: Path, code: str, language: str, filename: str | None) -> Path:
    code_dir = work_dir / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    if filename is not None:
        if not filename or "/" in filename or filename.startswith(".") or "\0" in filename:
            raise UserInputError(f"invalid filename {filename!r}: give a plain file name such as 'main.py'")
        path = code_dir / filename
        path.write_text(code, encoding="utf-8")
        return path
    while True:
        path = code_dir / f"snippet_{next(_snippet_counter)}{_SUFFIXES[language]}"
        try:
            with path.open("x", encoding="utf-8") as fh:
                fh.write(code)
            return path
        except FileExistsError:
            continue


class _Capture(asyncio.Protocol):
    """Reads one output pipe to EOF keeping at most ``cap`` bytes; the rest is discarded, so the
    child never blocks on a full pipe."""

    def __init__(self, cap: int) -> None:
        self.cap, self.data, self.truncated = cap, bytearray(), False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        if room > 0:
            self.data += chunk[:room]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _open_pipe(cap: int) -> tuple[_Capture, asyncio.BaseTransport, int]:
    """Our own pipe (not asyncio's subprocess pipes, whose wait() also waits for EOF): returns the
    capture, its transport and the write end for the child."""
    read_fd, write_fd = os.pipe()
    capture = _Capture(cap)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: capture, os.fdopen(read_fd, "rb", buffering=0))
    return capture, transport, write_fd


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _end_tree(proc: asyncio.subprocess.Process, isolated: bool) -> int:
    """End every process of the run; its exit code. Isolated, the layer's child is the first process of the run's
    PID namespace: killing it kills all the others (``setsid`` ones too), and our child exits once they are gone."""
    if isolated and proc.returncode is None:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            try:
                os.kill(int(child), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), _END_GRACE_S)
        except TimeoutError:
            logger.warning("sandbox process %s still running %.1fs after its namespace was killed", proc.pid, _END_GRACE_S)
    _kill_group(proc.pid)  # the layer itself, or (no isolation) the code and what stayed in its process group
    return await proc.wait()


# --- public API -------------------------------------------------------------------------------


async def run_code(
    code: str, language: Language, work_dir: Path, config: SandboxConfig | None = None, *, filename: str | None = None
) -> ExecutionResult:
    """Write ``code`` to ``work_dir/code/`` and run it sandboxed; never raises for the code's own failures."""
    if language not in _SUFFIXES:
        raise UserInputError(f"unsupported language {language!r}: use 'python' or 'bash'")
    config = config or SandboxConfig()
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = work_dir / ".tmp"
    tmp_dir.mkdir(exist_ok=True)
    code_path = _write_snippet(work_dir, code, language, filename)

    layer = await isolation.choose(work_dir, config)
    interpreter = [sys.executable] if language == "python" else [shutil.which("bash") or "/bin/bash"]
    argv = [*layer.prefix, *interpreter, str(code_path)]

    (out, out_tr, out_w), (err, err_tr, err_w) = await _open_pipe(config.max_output_bytes), await _open_pipe(config.max_output_bytes)
    proc: asyncio.subprocess.Process | None = None
    timed_out = False
    start = time.monotonic()
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                cwd=work_dir,
                env=_child_env(work_dir, tmp_dir, config),
                start_new_session=True,
                preexec_fn=_rlimits(config),
            )
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            await asyncio.wait_for(proc.wait(), config.timeout_seconds)
        except TimeoutError:
            timed_out = True
        exit_code = await _end_tree(proc, bool(layer.prefix))  # the timed-out run, or leftovers of a finished one
        if timed_out:
            exit_code = -signal.SIGKILL  # whatever the layer's own process made of it (unshare: 1)
        _, pending = await asyncio.wait([out.closed, err.closed], timeout=_DRAIN_GRACE_S)
        if pending:
            logger.warning("output of %s still open %.1fs after exit (escaped process?)", code_path.name, _DRAIN_GRACE_S)
    finally:  # also on cancellation: never leave a process of the run running
        if proc is not None:
            await _end_tree(proc, bool(layer.prefix))
        out_tr.close()
        err_tr.close()
    duration = time.monotonic() - start
    logger.info("ran %s (%s, %s): exit %s, %.2fs%s", code_path.name, language, layer.name, exit_code, duration, ", timed out" if timed_out else "")
    return ExecutionResult(
        exit_code=exit_code,
        stdout=out.data.decode("utf-8", errors="replace"),
        stderr=err.data.decode("utf-8", errors="replace"),
        timed_out=timed_out,
        truncated=out.truncated or err.truncated,
        duration_s=round(duration, 3),
        isolation=layer.name,
        code_path=str(code_path),
    )


def format_result(result: ExecutionResult, tail_chars: int = _TAIL_CHARS) -> str:
    """A compact text report for the model: status line, then the tails of stdout and stderr."""
    lines = [
        f"exit_code: {result.exit_code} | timed_out: {result.timed_out} | duration: {result.duration_s:.2f}s | isolation: {result.isolation}",
        f"saved as: {result.code_path}",
    ]
    if result.timed_out:
        lines.append("The process was killed at the time limit; make the code faster or do less per call.")
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if not text:
            lines.append(f"{name}: (empty)")
            continue
        cut = len(text) > tail_chars or result.truncated
        lines.append(f"{name}{' (last ' + str(tail_chars) + ' chars shown; output was cut)' if cut else ''}:")
        lines.append(text[-tail_chars:].rstrip("\n"))
    return "\n".join(lines)


class ExecuteCodeArgs(BaseModel):
    code: str = Field(description="The complete program to run (not a fragment).")
    language: str = Field("python", description="'python' (default) or 'bash'.")


class ExecuteCodeTool(BaseTool[ExecuteCodeArgs, BaseModel]):
    """The ``execute_code`` tool for an autogen agent, running snippets in ``work_dir``. (Its argument model is made
    once: a FunctionTool makes one for every session's tool.)"""

    def __init__(self, work_dir: Path, config: SandboxConfig | None = None) -> None:
        self.work_dir = work_dir
        self.config = config = config or SandboxConfig()
        description = (
            "Run a complete Python or bash program in a sandbox and get its exit code, stdout and stderr. "
            "The working directory is the session work dir (files written there persist between calls). "
            f"Limits: {config.timeout_seconds:g}s wall clock, output capped at {config.max_output_bytes} bytes per stream"
            f"{'' if config.allow_network else ', network access normally blocked'}. Print what you need to see."
        )
        super().__init__(ExecuteCodeArgs, str, "execute_code", description)  # type: ignore[arg-type]

    async def run(self, args: ExecuteCodeArgs, cancellation_token: CancellationToken) -> str:  # type: ignore[override]
        lang = args.language.strip().lower()
        if lang not in _SUFFIXES:
            return f"error: unsupported language {args.language!r}. Only 'python' and 'bash' are supported; nothing was run."
        try:
            result = await run_code(args.code, lang, self.work_dir, self.config)  # type: ignore[arg-type]
        except (UserInputError, ConfigError) as exc:
            return f"error: {exc}"
        except Exception as exc:  # e.g. the interpreter or bwrap could not be started
            logger.exception("execute_code failed to start")
            return f"error: the code could not be started ({type(exc).__name__}: {exc}); nothing was run."
        return format_result(result)


def execute_code_tool(work_dir: Path, config: SandboxConfig | None = None) -> ExecuteCodeTool:
    """The ``execute_code`` tool for an autogen agent, running snippets in ``work_dir``."""
    return ExecuteCodeTool(work_dir, config)
