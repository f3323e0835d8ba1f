from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from lib.stack.process import ManagedProcess, log_tail, port_is_free, start_ticks


def _listening_socket() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


def test_port_is_free_sees_a_listener() -> None:
    sock, port = _listening_socket()
    try:
        assert not port_is_free("127.0.0.1", port)
    finally:
        sock.close()
    assert port_is_free("127.0.0.1", port)


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path)
    # A parent that starts a child, as a launcher script starts a JVM.
    code = "import subprocess,time; subprocess.Popen(['sleep','300']); time.sleep(300)"
    pid = proc.start([sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not psutil.Process(pid).children():
        time.sleep(0.05)
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    assert len(family) == 2
    assert proc.pid() == pid
    assert proc.stop(timeout=5)
    for member in family:
        assert not member.is_running() or member.status() == psutil.STATUS_ZOMBIE
    assert proc.pid() is None
    assert not proc.pid_file.exists()


def test_stale_pid_file_is_forgotten(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", tmp_path)
    proc.pid_file.parent.mkdir(parents=True)
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    proc.pid_file.write_text(f"{dead.pid}\n")
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    assert proc.stop() is False


def test_a_pid_file_outlives_a_step_of_the_wall_clock_but_not_a_recycled_pid(tmp_path: Path) -> None:
    """The process's identity is its start in clock ticks since boot: a wall clock stepped forward (the pid
    file then looks older than the process) keeps it, another process under the same pid does not."""
    proc = ManagedProcess("steady", tmp_path)
    pid = proc.start(["sleep", "60"])
    try:
        recorded = proc.pid_file.read_text().split()
        assert recorded == [str(pid), str(start_ticks(pid))]
        long_ago = time.time() - 3600  # as if the clock jumped an hour forward since the file was written
        os.utime(proc.pid_file, (long_ago, long_ago))
        assert proc.pid() == pid
        proc.pid_file.write_text(f"{pid} {int(recorded[1]) + 1}\n")  # the same pid, another start: recycled
        assert proc.pid() is None and not proc.pid_file.exists()
    finally:
        os.kill(pid, signal.SIGKILL)


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    tail = log_tail(log, lines=3)
    assert tail.splitlines() == ["    line 97", "    line 98", "    line 99"]
    assert "no log" in log_tail(tmp_path / "missing.log")


@pytest.mark.parametrize("code", [3, 0])
def test_exit_code_of_a_process_that_ended(tmp_path: Path, code: int) -> None:
    proc = ManagedProcess("quick", tmp_path)
    proc.start([sys.executable, "-c", f"raise SystemExit({code})"])
    deadline = time.monotonic() + 10
    while proc.exit_code() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.exit_code() == code
