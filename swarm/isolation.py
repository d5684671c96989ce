"""Isolation layers for sandboxed code: which one runs here, and the command prefix that starts it.

Kinds (``SandboxConfig.isolation`` / ``SWARM_MCP_SANDBOX``):

- ``bubblewrap``: ``bwrap`` with the whole filesystem read-only, the work dir read-write, empty tmpfs
  over ``/tmp``, ``/root``, ``/home``, the store's directory..., new pid/net/ipc/uts/user
  namespaces, no capabilities, ``--die-with-parent``. Where user namespaces work it runs inside an
  outer PID namespace whose ``pid_max`` caps the process count (``RLIMIT_NPROC`` does not bind root).
- ``namespaces``: no bubblewrap needed: util-linux ``unshare`` (user, pid, net, mount, ipc, uts
  namespaces; ``--kill-child``) around ``swarm/sandbox_init.py``, which hides ``/tmp``, ``/run``,
  ``/root``... behind tmpfs and applies Landlock: read-only system and interpreter, read-write work
  dir, no TCP.
- ``none``: rlimits and a scrubbed environment only; runs only when the operator opts in.

``auto`` takes the first that works (bubblewrap, then namespaces) and refuses when neither does.
Every kind ends the whole process tree when the run ends: the PID namespace dies with its first process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import ConfigError

if TYPE_CHECKING:
    from .sandbox import SandboxConfig

logger = logging.getLogger("swarm.sandbox")

IsolationKind = Literal["auto", "bubblewrap", "namespaces", "none"]
KINDS: tuple[str, ...] = ("auto", "bubblewrap", "namespaces", "none")
BWRAP_BINARY = "bwrap"
UNSHARE_BINARY = "unshare"
INIT_SCRIPT = Path(__file__).with_name("sandbox_init.py")
PID_MAX_MIN = 301  # the kernel's lowest pid_max: a sandbox holds at most about this many processes
READ_ONLY_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc", "/dev")
WRITABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty")
ALWAYS_HIDDEN = ("/tmp", "/var/tmp", "/run", "/dev/shm")  # namespaces: unix sockets and scratch of others live there
_probe_cache: dict[tuple[object, ...], str | None] = {}  # probe key -> None (works) or why not

HOW_TO_GET_ONE = (
    "Install bubblewrap (apt-get install bubblewrap; scripts/setup.sh does it when run as root), or allow unprivileged "
    "user namespaces (sysctl kernel.unprivileged_userns_clone=1 / kernel.apparmor_restrict_unprivileged_userns=0) on a "
    "kernel with Landlock; or set SWARM_MCP_SANDBOX=none to run code with resource limits only, at your own risk"
)


@dataclass(frozen=True)
class Layer:
    """The chosen isolation: its name (recorded with every result) and the argv prefix that applies it."""

    name: str
    prefix: tuple[str, ...]


def _keep_paths() -> list[Path]:
    """The interpreter's directories: they stay visible read-only in every kind."""
    keep = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep.add(Path(sys.executable).resolve().parent)
    return sorted(keep)


def _hidden(config: "SandboxConfig") -> list[Path]:
    paths = {Path(p).resolve() for p in config.hidden_paths}
    return sorted(paths, key=lambda p: len(p.parts))


def bwrap_argv(work_dir: Path, config: "SandboxConfig") -> list[str]:
    """bwrap command-line prefix: read-only root, read-write work dir, private /tmp, hidden secrets dirs, no network."""
    keep = _keep_paths()
    argv = [BWRAP_BINARY, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    tmp = Path("/tmp").resolve()
    scratch = [Path(p).resolve() for p in ALWAYS_HIDDEN if not p.startswith("/dev/")]  # --dev gives a fresh /dev
    for hidden in dict.fromkeys([tmp, *scratch, *_hidden(config)]):
        if not hidden.is_dir() or (hidden != tmp and any(k == hidden or hidden.is_relative_to(k) for k in keep)):
            continue  # hiding it would hide the interpreter itself
        argv += ["--tmpfs", str(hidden)]  # a private /tmp always; the interpreter is bound back below
        for k in (k for k in keep if k.is_relative_to(hidden)):
            argv += ["--ro-bind", str(k), str(k)]
    argv += ["--bind", str(work_dir), str(work_dir), "--chdir", str(work_dir), "--unshare-all"]
    if config.allow_network:
        argv.append("--share-net")
    argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--"]
    return argv


def _init_argv(spec: dict[str, object], *, net: bool) -> list[str]:
    unshare = [UNSHARE_BINARY, "--user", "--map-root-user", "--pid", "--mount", "--ipc", "--uts", "--fork", "--kill-child", "--mount-proc"]
    return unshare + (["--net"] if net else []) + ["--", sys.executable, "-I", "-S", str(INIT_SCRIPT), json.dumps(spec), "--"]


def namespaces_argv(work_dir: Path, config: "SandboxConfig") -> list[str]:
    """unshare + sandbox_init prefix: namespaces, tmpfs over scratch and secrets dirs, Landlock to the work dir."""
    keep = [str(k) for k in _keep_paths()]
    spec = {
        "pid_max": max(PID_MAX_MIN, config.max_processes or 0),
        "hide": [str(p) for p in sorted({Path(p).resolve() for p in ALWAYS_HIDDEN} | set(_hidden(config)), key=lambda p: len(p.parts))],
        "read_only": [p for p in READ_ONLY_SYSTEM if Path(p).exists()] + keep,
        "read_write": [str(work_dir)],
        "writable_files": list(WRITABLE_DEVICES),
    }
    return _init_argv(spec, net=not config.allow_network)


def _pid_cap_argv(config: "SandboxConfig") -> list[str]:
    """An outer PID namespace with a lowered pid_max, then exec the next command (bubblewrap)."""
    return _init_argv({"pid_max": max(PID_MAX_MIN, config.max_processes or 0), "exec": True}, net=False)


async def _probe(argv: list[str]) -> str | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    except (OSError, TimeoutError) as exc:
        return f"probe failed: {type(exc).__name__}: {exc}"
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines() or [f"exit code {proc.returncode}"]
        return lines[-1]
    return None


async def unavailable_reason(kind: str, config: "SandboxConfig") -> str | None:
    """None if isolation ``kind`` works here with ``config``'s flags, else why not. Probed once per process."""
    key = (kind, BWRAP_BINARY, UNSHARE_BINARY, config.allow_network, config.hidden_paths)
    if key not in _probe_cache:
        binary = BWRAP_BINARY if kind == "bubblewrap" else UNSHARE_BINARY
        if shutil.which(binary) is None:
            package = "bubblewrap" if kind == "bubblewrap" else "util-linux"
            reason: str | None = f"{binary!r} not found on PATH (install the Debian package {package!r})"
        else:
            with tempfile.TemporaryDirectory(prefix="swarm-sandbox-probe-") as tmp:
                build = bwrap_argv if kind == "bubblewrap" else namespaces_argv
                reason = await _probe(build(Path(tmp).resolve(), config) + [sys.executable, "-c", "pass"])
        _probe_cache[key] = reason
        if reason:
            logger.warning("sandbox isolation %r unavailable: %s", kind, reason)
    return _probe_cache[key]


async def choose(work_dir: Path, config: "SandboxConfig") -> Layer:
    """The isolation ``config.isolation`` asks for, as a command prefix; ConfigError if it cannot be had."""
    kind = config.isolation
    if kind == "none":
        return Layer("none (operator opt-in: rlimits only)", ())
    reasons: list[str] = []
    for candidate in ("bubblewrap", "namespaces") if kind == "auto" else (kind,):
        reason = await unavailable_reason(candidate, config)
        if reason is not None:
            reasons.append(f"{candidate}: {reason}")
            continue
        if candidate == "namespaces":
            return Layer("namespaces", tuple(namespaces_argv(work_dir, config)))
        outer = await unavailable_reason("namespaces", config) is None
        return Layer("bubblewrap", tuple((_pid_cap_argv(config) if outer else []) + bwrap_argv(work_dir, config)))
    raise ConfigError(f"code was not run: no isolation layer works here ({'; '.join(reasons)}). {HOW_TO_GET_ONE}.")
