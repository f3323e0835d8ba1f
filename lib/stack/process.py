"""Supervising local service processes: pid files, ports, log tails, clean stops.

The embedded stack runs each service as a child process in its own session, so `stack down`
can stop the whole process group (a launcher script and the JVM it started) and leave nothing
behind. State lives under STACK_HOME: `run/<name>.pid` and `logs/<name>.log`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it): for a process of a test's own, or a dead address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (we try to bind it, as the service would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_owner(port: int) -> str:
    """Describe the process listening on a port, for error messages ('pid 123: java ...')."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                cmd = " ".join(proc.cmdline())[:120]
                return f"pid {conn.pid} ({cmd})"
    except (psutil.Error, OSError):
        pass
    return "another process"


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, indented, for error messages."""
    if not path.exists():
        return "    (no log written)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join("    " + line[:300] for line in text) or "    (log is empty)"


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat): fixed for the
    process's life and never moved by the wall clock. None without /proc (not Linux) or for no process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rpartition(")")[2].split()[19])  # the fields after the command name start at field 3
    except (IndexError, ValueError):
        return None


class ManagedProcess:
    """One supervised process: its pid file, its log, and how to start and stop it."""

    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.pid_file = home / "run" / f"{name}.pid"
        self.log_file = home / "logs" / f"{name}.log"
        self._popen: subprocess.Popen | None = None

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            fields = self.pid_file.read_text().split()
            pid = int(fields[0])
            recorded = int(fields[1]) if len(fields) > 1 else None
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(pid)
            # A recycled pid belongs to another process: one that started at another moment. The moment
            # is compared in clock ticks since boot, which a step of the wall clock (a VM resumed, NTP)
            # does not move; wall-clock times would, and every pid file would look stale at once.
            started = start_ticks(pid)
            if recorded is not None and started is not None:
                if started != recorded:
                    raise psutil.NoSuchProcess(pid)
            elif proc.create_time() > self.pid_file.stat().st_mtime + 5:  # no /proc: wall clock it is
                raise psutil.NoSuchProcess(pid)
        except psutil.NoSuchProcess:
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, command: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start the command in a new session, logging to our log file; returns its pid."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== start {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(command)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        ticks = start_ticks(proc.pid)
        self.pid_file.write_text(f"{proc.pid} {ticks}\n" if ticks is not None else f"{proc.pid}\n")
        self._popen = proc
        return proc.pid

    @property
    def popen(self) -> subprocess.Popen:
        """The process this object started (a test signals and waits on it directly)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was not started by this object")
        return self._popen

    def memory_bytes(self) -> int:
        """Resident memory of the process and every child it started (a taskmanager's Python
        workers, a Spark worker's executors); 0 when it does not run."""
        pid = self.pid()
        total = 0
        for proc in _family(pid) if pid is not None else []:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += proc.memory_info().rss
        return total

    def exit_code(self) -> int | None:
        """The exit code if the process we started has already ended, else None."""
        if self._popen is not None:
            return self._popen.poll()
        return None if self.pid() else -1

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the process group: SIGTERM, then SIGKILL after the timeout. True if one ran."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = None
        procs = _family(pid)
        for proc in procs:
            _signal(proc, signal.SIGTERM)
        if pgid is not None and pgid == pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for proc in alive:
            _signal(proc, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
        if self._popen is not None:
            self._popen.poll()
        self.pid_file.unlink(missing_ok=True)
        return True


def _family(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal(proc: psutil.Process, sig: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(sig)
