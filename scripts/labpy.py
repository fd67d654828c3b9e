"""The helpers bench/labbench.py and guest/smoke-test.py share (issue 10): a program driven
through its console, and a QMP client. Standard library only.

Both import it by path, relative to their own file:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "scripts"))

Session runs a program either on a pty this process owns (pty=True: the secondary is the child's
stdio and controlling terminal, as on a user's terminal; labrun and every bench baseline start
the same way) or on pipes (pty=False: stdin a pipe, stdout and stderr one pipe; a ^C byte then
reaches the program as a byte, never as SIGINT from a tty driver). Everything read is kept in
`transcript`; `expect` waits for a byte string after `cursor` and moves the cursor past it."""
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import time
import tty

now_ns = time.perf_counter_ns


class Error(Exception):
    """A console or QMP failure, with a message for the user."""


# ------------------------------------------------------------------------------------------
# the console

def make_ctty():
    # Runs in the child (fork path of subprocess, the same for labrun and for every baseline):
    # new session, the pty as controlling terminal, so its hang-up ends the child if we die.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_cooked(fd):
    """A terminal as an interactive shell leaves it."""
    a = termios.tcgetattr(fd)
    a[0] |= termios.ICRNL
    a[1] |= termios.OPOST | termios.ONLCR
    a[3] |= termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN
    termios.tcsetattr(fd, termios.TCSANOW, a)


def set_raw(fd):
    tty.setraw(fd, termios.TCSANOW)
    a = termios.tcgetattr(fd)
    a[6][termios.VMIN] = 1
    a[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)


class Session:
    """One program and its console. `fd` is read (and, on a pty, written); `t0` is
    perf_counter_ns just before the spawn, the origin of the times `expect` returns.
    `kill_grace`: seconds between SIGTERM and SIGKILL in kill() (0: SIGKILL at once)."""

    def __init__(self, argv, env=None, pty=True, raw=False, name="proc", winsize=(40, 132), kill_grace=3):
        self.name = name
        self.kill_grace = kill_grace
        self.transcript = bytearray()
        self.cursor = 0
        self.eof = False
        self.sfd = None
        if pty:
            self.fd, self.sfd = os.openpty()
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", *winsize, 0, 0))
            (set_raw if raw else set_cooked)(self.sfd)
            self.wfd = self.fd
            self.t0 = now_ns()
            self.proc = subprocess.Popen(argv, stdin=self.sfd, stdout=self.sfd, stderr=self.sfd,
                                         env=env, preexec_fn=make_ctty, close_fds=True)
        else:
            self.t0 = now_ns()
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=env, bufsize=0)
            self.fd, self.wfd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        self.pid = self.proc.pid

    def since_start(self, t_ns):
        """Seconds from the spawn to `t_ns` (a time `expect` returned)."""
        return (t_ns - self.t0) / 1e9

    def tail(self, n=1500):
        return bytes(self.transcript[-n:]).decode(errors="replace")

    def pump(self, timeout):
        """Reads what arrives within `timeout` s; False once the console has no writer left."""
        r, _, _ = select.select([self.fd], [], [], max(0, timeout))
        if not r:
            return True
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.transcript += data
        return True

    def drain(self):
        while True:
            r, _, _ = select.select([self.fd], [], [], 0)
            if not r or not self.pump(0):
                return

    def expect(self, pattern, timeout):
        """Waits for `pattern` (bytes, or str as UTF-8) after the cursor; returns perf_counter_ns
        when it was read. Fails after `timeout` s, or at once when the console closes or the
        program has exited and nothing it wrote matches."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        deadline = time.monotonic() + timeout
        while True:
            i = self.transcript.find(pattern, self.cursor)
            if i >= 0:
                self.cursor = i + len(pattern)
                return now_ns()
            left = deadline - time.monotonic()
            if left <= 0 or self.eof or self.proc.poll() is not None:
                if left > 0 and not self.eof:
                    self.drain()  # what it wrote before exiting
                    if self.transcript.find(pattern, self.cursor) >= 0:
                        continue
                why = ("before the console closed" if self.eof else f"within {timeout} s" if left <= 0
                       else "before it exited")
                raise Error(f"{self.name}: no {pattern!r} {why} (exit {self.proc.poll()}); "
                            f"screen tail:\n{self.tail()}")
            self.pump(min(left, 0.2))

    def send(self, data):
        view = memoryview(data.encode() if isinstance(data, str) else data)
        while view:
            view = view[os.write(self.wfd, view):]

    def wait_exit(self, timeout):
        """The exit code, reading the console meanwhile; None if still running after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            if not self.pump(0.05):
                time.sleep(0.05)  # console closed; the exit follows
        return None

    def kill(self):
        if self.proc.poll() is not None:
            return
        if self.kill_grace > 0:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.kill_grace)
                return
            except subprocess.TimeoutExpired:
                pass
        self.proc.kill()
        self.proc.wait()

    def close(self):
        self.kill()
        if self.sfd is None:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            return
        for fd in (self.fd, self.sfd):
            try:
                os.close(fd)
            except OSError:
                pass


# ------------------------------------------------------------------------------------------
# QMP: one command at a time, events skipped

class QMP:
    """Connects to the QMP socket at `path`, reads the greeting and negotiates capabilities."""

    def __init__(self, path, timeout=60):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.s.settimeout(timeout)
            self.s.connect(path)
            self.f = self.s.makefile("rb")
            self._read()  # greeting
            self.cmd("qmp_capabilities")
        except BaseException:
            self.s.close()
            raise

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise Error("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, execute, **args):
        """The command's "return" value; an "error" reply raises Error."""
        m = {"execute": execute}
        if args:
            m["arguments"] = args
        self.s.sendall(json.dumps(m).encode() + b"\n")
        r = self._read()
        if "error" in r:
            raise Error(f"QMP {execute}: {r['error']}")
        return r.get("return")

    def hmp(self, line):
        """A human-monitor command whose success prints nothing (savevm, loadvm, delvm)."""
        out = self.cmd("human-monitor-command", **{"command-line": line})
        if out and out.strip():
            raise Error(f"HMP {line}: {out.strip()}")

    def close(self):
        try:
            self.f.close()
            self.s.close()
        except OSError:
            pass


def connect_qmp(path, timeout=10):
    """QMP(path), retried every 20 ms for `timeout` s while the socket is missing or refusing."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return QMP(path)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
