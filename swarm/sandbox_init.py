"""First process of a sandbox's namespaces (stdlib only: run as ``python -I -S sandbox_init.py SPEC -- ARGV``).

``swarm.isolation`` starts it as PID 1 of new user/pid/net/mount/ipc/uts namespaces (``unshare
--map-root-user``). It caps the namespace's process count (``pid_max``, per PID namespace since
Linux 6.14), then either execs bubblewrap (``"exec": true``) or, for the ``namespaces`` isolation:
hides ``/tmp``, ``/run``... behind empty tmpfs (binding the work dir and the interpreter back),
restricts the filesystem (read-only system and interpreter, read-write work dir) and TCP with
Landlock, drops capabilities, sets no_new_privs, runs ARGV and reaps every orphan until ARGV's
process ends. Its exit ends the PID namespace, which kills every process left in it (``setsid``
ones too). Exit code: ARGV's, or 128+signal; 125 if the sandbox could not be set up.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446  # same on x86-64 and arm64
_PR_SET_NO_NEW_PRIVS, _PR_CAPBSET_DROP = 38, 24
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC = 2, 4, 4096, 16384
# Filesystem rights by Landlock ABI: 1 = bits 0-12, 2 adds REFER, 3 TRUNCATE, 5 IOCTL_DEV.
_FS_BITS = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR, _TRUNCATE, _IOCTL_DEV = 1, 2, 4, 8, 1 << 14, 1 << 15
_NET_TCP = 3  # BIND_TCP | CONNECT_TCP (ABI 4)
_SCOPES = 3  # ABSTRACT_UNIX_SOCKET | SIGNAL (ABI 6)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 if Landlock is unavailable."""
    result = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(result, 0)


def _landlock(read_only: list[str], read_write: list[str], writable_files: list[str]) -> None:
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available in this kernel")
    fs_all = (1 << _FS_BITS.get(abi, 16)) - 1
    file_rights = fs_all & (_EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV)
    attr = _RulesetAttr(fs_all, _NET_TCP if abi >= 4 else 0, _SCOPES if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16
    ruleset = _check(_libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)), "landlock_create_ruleset")
    rules = [(p, _EXECUTE | _READ_FILE | _READ_DIR) for p in read_only] + [(p, fs_all) for p in read_write]
    rules += [(p, file_rights & (_READ_FILE | _WRITE_FILE | _TRUNCATE)) for p in writable_files]
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if not os.path.isdir(path):
                access &= file_rights
            rule = _PathBeneath(access, fd)
            _check(_libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0)), f"landlock_add_rule({path})")
        finally:
            os.close(fd)
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    _check(_libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)), "landlock_restrict_self")
    os.close(ruleset)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                       data.encode() if data else None), f"mount {target}")


def _hide(paths: list[str], keep: list[str]) -> None:
    """An empty tmpfs over each of ``paths``; any of ``keep`` beneath one is bound back at its place."""
    for path in paths:
        if os.path.islink(path) or not os.path.isdir(path):
            continue
        inner = [k for k in keep if k == path or k.startswith(path.rstrip("/") + "/")]
        fds = [(k, os.open(k, os.O_PATH | os.O_DIRECTORY)) for k in inner]
        _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=64m")
        for k, fd in fds:
            os.makedirs(k, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", k, None, _MS_BIND | _MS_REC)
            os.close(fd)


def _run_and_reap(argv: list[str]) -> int:
    """Run ``argv`` as our child; reap every orphan (we are PID 1) until it ends; its wait status as an exit code."""
    child = os.fork()
    if child == 0:
        try:
            for cap in range(64):  # no capabilities in the sandboxed program (it is root of its own user namespace)
                if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) < 0:
                    break
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"swarm sandbox: cannot run {argv[0]}: {exc}", file=sys.stderr)
        os._exit(127)
    while True:
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def main(args: list[str]) -> int:
    spec, argv = json.loads(args[0]), args[2:]
    try:
        if spec.get("pid_max"):
            with open("/proc/sys/kernel/pid_max", "w") as fh:
                fh.write(str(spec["pid_max"]))
        if spec.get("exec"):
            os.execvp(argv[0], argv)
        _hide(spec["hide"], spec["read_write"] + spec["read_only"])
        _landlock(spec["read_only"], spec["read_write"], spec["writable_files"])
    except OSError as exc:
        print(f"swarm sandbox: setting up the sandbox failed: {exc}", file=sys.stderr)
        return 125
    return _run_and_reap(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
