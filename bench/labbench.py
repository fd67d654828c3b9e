#!/usr/bin/env python3
"""`make bench`: labrun's cost measured against plain QEMU and bare ptys (issue 6).

Run by bench/run.sh, which passes --root, --labrun, --work and --out, exports LABRUN_ACCEL=tcg and
cleans up (kills the processes listed in WORK/pids, removes WORK) whatever happens here.
Standard library only. Every figure is the median of several runs, each labrun run paired with
its baseline run in the same session (alternating order), and is written to results.md/json."""
import argparse
import fcntl
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "scripts"))
import labpy  # noqa: E402  (the pty and QMP helpers guest/smoke-test.py uses too)

# Runs per figure (each figure's median is over this many runs of labrun and of its baseline).
RUNS = {
    "throughput": 5,   # 256 MiB each
    "guest-throughput": 9,  # `cat` of a 2 MB file in the tiny guest: plain QEMU, labrun + 1 viewer, + 2 viewers
    "detector": 5,  # `cat` of a 2 MB file with the crash detector on and off
    "keystroke": 5,    # 10,000 round trips each
    "live": 10,        # create / restore / delete cycles (half with each lab under labrun)
    "offline": 9,
    "boot": 6,
    "suspend": 5,
    "cli": 31,
    "checkpoint": 6,          # fresh runtime layer resumed vs cold boot vs plain QEMU -loadvm (tiny guest)
    "checkpoint-debian": 3,   # the same on the full Debian guest (a cold boot is ~30 s under TCG)
    "reset": 5,               # reset in place vs stop + offline reset + cold boot
    "makerun": 5,             # make reset YES=1 && make run, checkpoint vs cold
}
# Every figure --only accepts, in the order they run.
FIGURES = ["throughput", "guest-throughput", "detector", "keystroke", "noqmp", "boot", "suspend", "checkpoint", "checkpoint-debian",
           "reset", "makerun", "live", "offline", "cli"]
THROUGHPUT_BYTES = 256 << 20
# The real-guest throughput figure (issue 12): a 2 MB text file made once in each lab's guest,
# then `cat` to the console, timed until the marker echoed right after it is on the terminal(s).
GUEST_FILE_BYTES = 2_000_000
GUEST_FILE = "/root/big.txt"
GUEST_LINE = "the quick brown fox jumps over the lazy dog 0123456789"
CAT_COMMAND = f"cat {GUEST_FILE}; echo END$((40+2))\r".encode()
CAT_END = b"END42"
ROUND_TRIPS = 10_000
IDLE_SECONDS = 30
PROMPT = b"root@lab:"
READY = b"labrun-guest: ready"
ECHO = b"echo r$((6*7))\r"
ANSWER = b"r42"
# Boot checkpoint lines on labrun's console (issue 11).
RESUMED = b"resumed the boot checkpoint of"
KEPT = b"kept a boot checkpoint"
NOT_RESUMED = [b"booting cold", b"cold boot (--cold)", b"is not usable", b"could not be started again",
               b"not reset:", b"no boot checkpoint kept", b"no boot checkpoint this time"]
# Environment variables of a surrounding `make bench` that must not reach the make under test.
MAKE_VARS = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR")

now_ns = labpy.now_ns
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(labpy.Error):
    pass


# ------------------------------------------------------------------------------------------
# processes we start: recorded in WORK/pids ("pid starttime") so run.sh's trap can end exactly
# these (and no other) if this helper dies.

class Registry:
    def __init__(self, path):
        self.path = path

    @staticmethod
    def starttime(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[19]
        except OSError:
            return None

    def add(self, pid):
        st = self.starttime(pid)
        if st:
            with open(self.path, "a") as f:
                f.write(f"{pid} {st}\n")


REG = None
WORK = "/tmp"


def children_of(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def cpu_seconds(pid):
    """utime+stime from /proc/PID/stat (clock ticks) and on-CPU ns from schedstat (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns += int(f.read().split()[0])
        except OSError:
            pass
    return ticks / CLK_TCK, ns / 1e9


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    return None


# ------------------------------------------------------------------------------------------
# programs on a pty this benchmark owns, as on a user's terminal (labpy.Session: the child
# setup is the same for labrun and every baseline), and spawned without a terminal

class SpawnFailed(BenchError):
    def __init__(self, argv, code, err):
        super().__init__(f"{shlex.join(argv)} exited {code}: {err}")
        self.code = code


def spawn_time(argv, env=None, capture=False):
    """Wall time (s) of one run from spawn to exit and the child's rusage (and its stdout with
    `capture`, read after it exited: a file, so nothing is read while the clock runs).
    posix_spawn (no fork of this Python) for labrun and its baselines alike."""
    devnull = os.open(os.devnull, os.O_RDWR)
    out = devnull
    if capture:
        out = os.open(os.path.join(WORK, "spawn-stdout"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    err_r, err_w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, out, 1),
               (os.POSIX_SPAWN_DUP2, err_w, 2)]
    t0 = now_ns()
    pid = os.posix_spawnp(argv[0], argv, env if env is not None else os.environ, file_actions=actions)
    os.close(err_w)
    _, status, ru = os.wait4(pid, 0)
    t = (now_ns() - t0) / 1e9
    err = b""
    while True:
        chunk = os.read(err_r, 65536)
        if not chunk:
            break
        err += chunk
    os.close(err_r)
    os.close(devnull)
    text = ""
    if capture:
        os.lseek(out, 0, os.SEEK_SET)
        text = os.read(out, 1 << 20).decode(errors="replace")
        os.close(out)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SpawnFailed(argv, code, err.decode(errors='replace').strip())
    return (t, ru, text) if capture else (t, ru)


def capture(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kw).stdout


# ------------------------------------------------------------------------------------------

def reported_seconds(out):
    """The "seconds" of `labrun snapshot OP --json` output; else (a labrun without --json) the
    seconds of its sentence "... in 0.183 s"; None when neither is there."""
    try:
        v = json.loads(out).get("seconds")
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    except (ValueError, AttributeError):
        m = re.search(r" in ([0-9.]+) s", out)
        return float(m.group(1)) if m else None


def median(xs):
    return statistics.median(xs)


def pct(xs, p):
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Figure:
    """One measured figure: a row of results.md, an object of results.json."""
    name: str
    value: float | None
    unit: str
    baseline: float | None        # measured in the same session, alternating with labrun
    ratio: float | None           # value / baseline, as judged
    goal: str                     # "<= 1.10 (ratio)", "< 30 ms", "added < 100 us", "(reported)" ...
    ok: bool | None               # None: reported, not judged; written as "pass"
    runs: int | None = None
    note: str | None = None
    added: float | None = None    # us over the baseline, for an "added < N us" goal
    samples: list | None = None
    baseline_samples: list | None = None
    extra: dict = field(default_factory=dict)  # figure-specific details, written as they are

    @property
    def verdict(self):
        return "info" if self.ok is None else ("PASS" if self.ok else "MISS")

    @property
    def fastest(self):
        """(min, baseline_min, ratio_of_min) for timed figures: under background load the minimum is
        the least disturbed run. Given for reading, not judged."""
        if self.unit in ("s", "ms") and self.samples and self.baseline_samples:
            lo, blo = min(self.samples), min(self.baseline_samples)
            return lo, blo, round(lo / blo, 3)
        return None

    def to_json(self):
        e = {"name": self.name, "value": self.value, "unit": self.unit, "baseline": self.baseline,
             "ratio": self.ratio, "goal": self.goal, "pass": self.ok}
        for k in ("added", "runs", "samples", "baseline_samples"):
            if getattr(self, k) is not None:
                e[k] = getattr(self, k)
        e.update(self.extra)
        if self.note is not None:
            e["note"] = self.note
        if self.fastest:
            e["min"], e["baseline_min"], e["ratio_of_min"] = self.fastest
        return e

    def miss_by(self):
        """How far a missed goal was missed, for the verdict column ("" if the goal has no number)."""
        g = self.goal
        try:
            if g.startswith(">="):
                lim = float(g.split()[1])
                return f" ({(lim - self.ratio) / lim * 100:.0f}% below {lim})"
            if g.startswith("<=") and "ratio" in g:
                lim = float(g.split()[1])
                return f" ({(self.ratio - lim) / lim * 100:.0f}% over {lim})"
            if g.startswith("added"):
                lim = float(re.findall(r"[\d.]+", g)[0])
                return f" (by {self.added - lim:.1f} us)"
            if g.startswith("<"):
                lim = float(re.findall(r"[\d.]+", g)[0])
                return f" (by {self.value - lim:.3g} {self.unit.split()[0]}, {(self.value - lim) / lim * 100:.0f}% over)"
        except Exception:
            pass
        return ""


class Bench:
    def __init__(self, a):
        self.root = a.root
        self.labrun = a.labrun
        self.golden = a.golden
        self.foreign = {}
        self.busy_before = {}
        self.work = a.work
        self.out = a.out
        self.python = sys.executable
        self.results = []  # [Figure]
        self.snapshot_json = None  # does this labrun take `snapshot create|restore|delete --json`? (None: not tried)
        self.sessions = []
        self.env = dict(os.environ, LABRUN_ACCEL="tcg", TERM=os.environ.get("TERM", "xterm"))
        self.env.pop("LABRUN_QEMU", None)
        self.env.pop("LABRUN_LAB", None)
        self.standin = os.path.join(self.work, "standin-qemu")
        with open(self.standin, "w") as f:
            f.write(f"#!/bin/sh\n# labrun bench stand-in \"QEMU\": ignores QEMU's arguments\n"
                    f"exec {shlex.quote(self.python)} {shlex.quote(os.path.join(self.root, 'bench', 'standin.py'))} \"$@\"\n")
        os.chmod(self.standin, 0o755)
        self.qemu_version = capture(["qemu-system-x86_64", "--version"]).splitlines()[0]

    # --- helpers ---------------------------------------------------------------------------

    def new_lab(self, name, checkpoints=False, source=None, conf=()):
        """`labrun init` of a throwaway lab from `source` (the bench's copy of the tiny guest).
        checkpoints=False writes `checkpoints = off` to its lab.conf: its boots of a fresh runtime
        layer (the first one after init or an offline reset) are then cold, as before issue 11,
        instead of resuming the golden image's boot checkpoint or pausing after the prompt to keep
        one. True: labrun's default store; a string: that directory. `conf`: more lab.conf lines."""
        path = os.path.join(self.work, name)
        capture([self.labrun, "--lab", source or self.golden, "init", path], env=self.env)
        lines = list(conf)
        if checkpoints is False:
            lines.append("checkpoints = off")
        elif isinstance(checkpoints, str):
            lines.append(f"checkpoints = {checkpoints}")
        if lines:
            with open(os.path.join(path, "lab.conf"), "a") as f:
                f.write("# added by bench/labbench.py\n" + "".join(l + "\n" for l in lines))
        return path

    def session(self, argv, env=None, raw=False, name="proc"):
        s = labpy.Session(argv, env=env or self.env, raw=raw, name=name)
        REG.add(s.pid)
        self.sessions.append(s)
        return s

    def finish(self, s):
        s.close()
        if s in self.sessions:
            self.sessions.remove(s)

    def record_children(self, pid):
        """labrun's processes below `pid`, for run.sh's cleanup: since issue 12 a `labrun boot`
        terminal's child is the supervisor (`boot --supervise`) and QEMU its child: the whole tree."""
        self.record_tree(pid)

    def record_tree(self, pid, depth=4):
        """Every descendant (sh -> make -> labrun -> QEMU), for run.sh's cleanup."""
        for c in children_of(pid):
            REG.add(c)
            if depth > 1:
                self.record_tree(c, depth - 1)

    @staticmethod
    def busy(seconds=0.5):
        def snap():
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return v[3] + v[4], sum(v)
        i0, t0 = snap()
        time.sleep(seconds)
        i1, t1 = snap()
        return 1 - (i1 - i0) / max(1, t1 - t0)

    def note_foreign(self, figure):
        """Other QEMU processes on this machine (not started by this run) compete for the 2 cores:
        noted per figure so a noisy result can be told apart."""
        ours = set()
        try:
            with open(REG.path) as f:
                ours = {int(l.split()[0]) for l in f if l.strip()}
        except OSError:
            pass
        found = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) not in ours:
                c = cmdline(int(d))
                if c and os.path.basename(c[0]).startswith(b"qemu-system"):
                    found.append(int(d))
        b = self.busy()
        self.busy_before[figure] = round(b * 100)
        if b > 0.1:
            log(f"  note: the machine is {b * 100:.0f}% busy before this figure (other work on it)")
        if found:
            self.foreign[figure] = found
            log(f"  note: {len(found)} other QEMU process(es) running on this machine: pids {found}")

    def add(self, name, value, unit, baseline, ratio, goal, ok, runs=None, note=None, added=None,
            samples=None, baseline_samples=None, **extra):
        f = Figure(name, value, unit, baseline, ratio, goal, ok, runs=runs, note=note, added=added,
                   samples=samples, baseline_samples=baseline_samples, extra=extra)
        self.results.append(f)
        log(f"  => {name}: {value} {unit} (baseline {baseline}, ratio {ratio}) goal {goal}: {f.verdict}")

    def dry_run_argv(self, lab):
        line = capture([self.labrun, "--lab", lab, "boot", "--dry-run"], env=self.env).strip()
        return shlex.split(line)

    def labrun_boot(self, lab, extra=(), env=None, name="labrun"):
        return self.session([self.labrun, "--lab", lab, "boot", *extra], env=env, name=name)

    def quit_labrun(self, s, timeout=20):
        s.drain()
        t0 = time.monotonic()
        s.send(b"\x01x")
        code = s.wait_exit(timeout)
        if time.monotonic() - t0 > 2:
            log(f"  note: labrun took {time.monotonic() - t0:.1f} s to quit")
        if code is None:
            raise BenchError(f"{s.name}: labrun did not exit within {timeout} s of Ctrl-a x")
        self.finish(s)
        return code

    def plain_qemu(self, lab, argv, name="qemu"):
        os.makedirs(os.path.join(lab, ".labrun"), mode=0o700, exist_ok=True)
        return self.session(argv, raw=True, name=name)

    def quit_plain(self, s, qmp_path):
        t0 = time.monotonic()
        try:
            q = labpy.connect_qmp(qmp_path, timeout=2)
            try:
                q.cmd("quit")
            finally:
                q.close()
        except Exception as e:
            log(f"  note: QMP quit failed ({e}); SIGTERM")
            s.proc.terminate()
        if s.wait_exit(10) is None:
            log("  note: plain QEMU still running 10 s after quit; killing it")
            s.kill()
        self.finish(s)
        if time.monotonic() - t0 > 2:
            log(f"  note: plain QEMU took {time.monotonic() - t0:.1f} s to quit")

    # --- 1 console throughput --------------------------------------------------------------

    def read_zeros(self, s, total, timeout=120):
        """Reads the pty until `total` zero bytes arrived: seconds from the first to the last."""
        fd = s.fd
        got = 0
        t_first = None
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while got < total:
            if not poller.poll(1000):
                if time.monotonic() > deadline or s.proc.poll() is not None:
                    tail = bytes(s.transcript[-800:]).decode(errors="replace")
                    raise BenchError(f"{s.name}: only {got} of {total} bytes (exit {s.proc.poll()}); screen:\n{tail}")
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                raise BenchError(f"{s.name}: pty closed after {got} of {total} bytes")
            z = chunk.count(0)
            if z != len(chunk):
                s.transcript += chunk.replace(b"\0", b"")
            if z and t_first is None:
                t_first = now_ns()
            got += z
        return (now_ns() - t_first) / 1e9

    def fig_throughput(self):
        log(f"1 console throughput: {THROUGHPUT_BYTES >> 20} MiB, {RUNS['throughput']} runs each "
            "(bare pty, labrun, and bench/relay.py as a reference)")
        self.note_foreign('console throughput')
        env = dict(self.env, LABRUN_BENCH_STANDIN=f"produce:{THROUGHPUT_BYTES}")
        mib = THROUGHPUT_BYTES / (1 << 20)
        kinds = ["bare", "labrun", "relay"]
        res = {k: [] for k in kinds}
        for i in range(RUNS["throughput"]):
            for which in kinds[i % 3:] + kinds[:i % 3]:
                if which == "bare":
                    s = self.session([self.standin], env=env, raw=True, name="bare producer")
                elif which == "relay":
                    s = self.session([self.python, os.path.join(self.root, "bench", "relay.py"), self.standin],
                                     env=env, name="relay+producer")
                else:
                    s = self.labrun_boot(self.lab_stand, ["--qemu", self.standin], env=env, name="labrun+producer")
                t = self.read_zeros(s, THROUGHPUT_BYTES)
                code = s.wait_exit(20)
                if code != 0:
                    raise BenchError(f"{s.name} exited {code}")
                res[which].append(mib / t)
                self.finish(s)
            log(f"  run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} MiB/s" for k, v in res.items()))
        b = median(res["bare"])
        for which, name, goal in (("labrun", "console throughput", True),
                                  ("relay", "console throughput, minimal relay (reference)", False)):
            v = median(res[which])
            self.add(name, round(v, 1), "MiB/s", round(b, 1), round(v / b, 3),
                     ">= 0.9 (ratio)" if goal else "(reference)", (v / b >= 0.9) if goal else None,
                     runs=RUNS["throughput"], samples=[round(x, 1) for x in res[which]],
                     baseline_samples=[round(x, 1) for x in res["bare"]],
                     note=(f"{mib:.0f} MiB of zeros from a stand-in QEMU; baseline: same producer on a bare pty, same reader"
                           if goal else "bench/relay.py (Python poll loop, same two-pty topology as labrun) in labrun's place"))

    # --- 1b console throughput of a real guest (issue 12 §4) -------------------------------

    @staticmethod
    def read_until_marker(sessions, marker, timeout=300):
        """Reads every session's terminal in one tight poll loop until each has shown `marker`
        (what comes before it is counted, not kept). Returns {session: (perf_counter_ns when it
        saw the marker, bytes read up to and including it, labrun's "[labrun] …" lines among
        them, reads it took)}; the rest of each read (the prompt) goes to the transcript, the
        cursor left just past the marker."""
        poller = select.poll()
        by_fd = {s.fd: s for s in sessions}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        keep = len(marker) - 1
        tail = dict.fromkeys(by_fd, b"")
        got = dict.fromkeys(by_fd, 0)
        reads = dict.fromkeys(by_fd, 0)
        notes = {fd: [] for fd in by_fd}
        done = {}
        deadline = time.monotonic() + timeout
        read = os.read
        while len(done) < len(by_fd):
            ready = poller.poll(1000)
            if not ready:
                if time.monotonic() > deadline or any(s.proc.poll() is not None for s in sessions):
                    lines = "; ".join(f"{s.name}: {got[s.fd]} bytes, exit {s.proc.poll()}, tail {bytes(tail[s.fd])!r}"
                                      for s in sessions)
                    raise BenchError(f"no {marker!r} on every terminal within {timeout} s ({lines})")
                continue
            for fd, _ in ready:
                try:
                    chunk = read(fd, 1 << 16)
                except OSError:
                    chunk = b""
                s = by_fd[fd]
                reads[fd] += 1
                if not chunk:
                    raise BenchError(f"{s.name}: terminal closed after {got[fd]} bytes (exit {s.proc.poll()})")
                if fd in done:
                    s.transcript += chunk
                    continue
                buf = tail[fd] + chunk
                if b"[labrun]" in buf:
                    notes[fd] += [m.decode(errors="replace") for m in re.findall(rb"\[labrun\][^\r\n]*", buf)]
                i = buf.find(marker)
                if i < 0:
                    got[fd] += len(chunk)
                    tail[fd] = buf[-keep:]
                    continue
                t = now_ns()
                end = i + len(marker)
                got[fd] += end - len(tail[fd])
                done[fd] = (t, got[fd], notes[fd], reads[fd])
                s.transcript += buf[:end]
                s.cursor = len(s.transcript)
                s.transcript += buf[end:]
        return {by_fd[fd]: v for fd, v in done.items()}

    def make_big_file(self, s):
        """The 2 MB text file in the guest on console `s`, made once per lab (a second call finds it)."""
        s.drain()
        s.cursor = len(s.transcript)
        s.send(f"[ -s {GUEST_FILE} ] || {{ yes '{GUEST_LINE}' | head -c {GUEST_FILE_BYTES} > {GUEST_FILE}; sync; }}; "
               f"wc -c < {GUEST_FILE}; echo MADE$((40+2))\r")
        s.expect(b"MADE42", 120)
        said = bytes(s.transcript[:s.cursor]).split(b"MADE42")[-2].split()
        size = int(said[-1]) if said and said[-1].isdigit() else None
        if size != GUEST_FILE_BYTES:
            raise BenchError(f"{s.name}: {GUEST_FILE} in the guest has {size} bytes, not {GUEST_FILE_BYTES}; screen tail:\n{s.tail()}")
        s.expect(PROMPT, 10)

    def cat_once(self, typer, viewers, label):
        """One timed `cat` of the big file: the command is typed on `typer`, the clock runs from
        just before its write until the end marker is on every terminal in `viewers` (all read
        in one tight loop). Returns (seconds, {session name: bytes read}, mean bytes per read,
        this process's CPU seconds meanwhile: the reader's own load)."""
        for v in viewers:
            v.drain()
        time.sleep(0.2)  # a quiet console: what came before the command is not timed
        for v in viewers:
            v.drain()
            v.cursor = len(v.transcript)
        c0 = time.process_time()
        t0 = now_ns()
        typer.send(CAT_COMMAND)
        seen = self.read_until_marker(viewers, CAT_END)
        t = (max(x[0] for x in seen.values()) - t0) / 1e9
        cpu = time.process_time() - c0
        per_read = sum(x[1] for x in seen.values()) / max(1, sum(x[3] for x in seen.values()))
        nbytes = {v.name: seen[v][1] for v in viewers}
        for v in viewers:
            if seen[v][1] < GUEST_FILE_BYTES:
                raise BenchError(f"{label}: {v.name} read only {seen[v][1]} bytes before {CAT_END!r} "
                                 f"(the file is {GUEST_FILE_BYTES}); screen tail:\n{v.tail()}")
        typer.expect(PROMPT, 30)
        for v in viewers:
            if v is not typer:
                v.expect(PROMPT, 30)
        for v in viewers:
            said = seen[v][2] + re.findall(r"\[labrun\][^\r\n]*", bytes(v.transcript[v.cursor:]).decode(errors="replace"))
            if said:
                log(f"  note: {label}: labrun said on {v.name} during the run: {' | '.join(said)}")
            if any("fell behind" in x for x in said):
                raise BenchError(f"{label}: {v.name} fell behind (output skipped): {said}")
        return t, nbytes, per_read, cpu

    @staticmethod
    def supervisor_of(s):
        """The supervisor a `labrun boot` terminal started (`labrun boot --supervise`, its child
        until the terminal exits: issue 12); the terminal's own pid with a labrun that has none."""
        for c in children_of(s.pid):
            if b"--supervise" in cmdline(c):
                return c
        return s.pid

    def attach_viewer(self, lab):
        """A second terminal: `labrun attach` on a pty of its own, once the hub has welcomed it."""
        v = self.session([self.labrun, "--lab", lab, "attach"], name="labrun attach")
        v.expect(b"other terminal", 15)
        self.record_tree(v.pid)
        time.sleep(0.2)
        v.drain()
        return v

    def detach_viewer(self, v):
        v.drain()
        v.send(b"\x01d")
        code = v.wait_exit(15)
        if code != 0:
            raise BenchError(f"{v.name}: `labrun attach` did not detach cleanly after Ctrl-a d "
                             f"(exit {code}); screen tail:\n{v.tail()}")
        self.finish(v)

    def fig_detector(self):
        """Issue 13: the crash detector reads every console byte; it must cost the console
        nothing measurable. Two labrun labs, one with lab.conf `crash_detection = off`, the same
        `cat` alternating."""
        n = RUNS["detector"]
        mb = GUEST_FILE_BYTES / 1e6
        log(f"1c console throughput with the crash detector against without it: `cat` of a {mb:g} MB file, {n} runs each")
        self.note_foreign("crash detector cost")
        lab_on = self.new_lab("detecton")
        lab_off = self.new_lab("detectoff")
        with open(os.path.join(lab_off, "lab.conf"), "a") as f:
            f.write("crash_detection = off\n")
        on = self.labrun_boot(lab_on, name="labrun, detector on")
        on.expect(READY, 60)
        on.expect(PROMPT, 30)
        self.record_tree(on.pid)
        res = {"on": [], "off": []}
        try:
            self.make_big_file(on)
            off = self.labrun_boot(lab_off, name="labrun, detector off")
            off.expect(READY, 60)
            off.expect(PROMPT, 30)
            self.record_tree(off.pid)
            try:
                self.make_big_file(off)
                for i in range(n + 1):
                    for which in (("on", "off") if i % 2 == 0 else ("off", "on")):
                        s = on if which == "on" else off
                        t = self.cat_once(s, [s], f"labrun, detector {which}")[0]
                        if i > 0:
                            res[which].append(t)
                    if i > 0:
                        log(f"  run {i}: detector on {res['on'][-1]:.3f} s, off {res['off'][-1]:.3f} s")
            finally:
                self.quit_labrun(off)
        finally:
            self.quit_labrun(on)
        v, b = median(res["on"]), median(res["off"])
        self.add("console throughput with the crash detector", round(mb / v, 3), "MB/s", round(mb / b, 3), round(b / v, 3),
                 ">= 0.95 (ratio)", b / v >= 0.95, runs=n, samples=[round(x, 3) for x in res["on"]],
                 baseline_samples=[round(x, 3) for x in res["off"]],
                 note=f"`cat` of a {mb:g} MB text file in the tiny guest to the `labrun boot` terminal, timed until the marker after it; "
                      "baseline: the same with lab.conf `crash_detection = off` (ratio = time without / time with)")

    def fig_guest_throughput(self):
        n = RUNS["guest-throughput"]
        mb = GUEST_FILE_BYTES / 1e6
        log(f"1b console throughput of the tiny guest: `cat` of a {mb:g} MB text file to the console; plain QEMU, "
            f"labrun with its console log and one terminal, and with a second `labrun attach`; {n} runs each")
        self.note_foreign("guest console throughput")
        lab_l = self.new_lab("catlabrun")  # lab.conf as `labrun init` writes it: console log on
        lab_p = self.new_lab("catplain")
        with open(os.path.join(lab_l, "lab.conf")) as f:
            if re.search(r"(?m)^\s*log\s*=\s*off\b", f.read()):
                raise BenchError(f"{lab_l}/lab.conf turns the console log off")
        # labrun first: it refuses to boot while another QEMU holds a layer of its chain (the golden).
        s = self.labrun_boot(lab_l, name="labrun boot terminal")
        s.expect(READY, 60)
        s.expect(PROMPT, 30)
        self.record_tree(s.pid)
        argv = self.dry_run_argv(lab_p)
        p = self.plain_qemu(lab_p, argv, name="plain qemu")
        p.expect(READY, 60)
        p.expect(PROMPT, 30)
        qmp_p = os.path.join(lab_p, ".labrun", "qmp.sock")
        log_path = os.path.join(lab_l, "console.log")
        try:
            self.make_big_file(s)
            self.make_big_file(p)
            kinds = ["plain", "one", "two"]
            res = {k: [] for k in kinds}
            sizes = {k: [] for k in kinds}
            per_read = {k: [] for k in kinds}
            reader_cpu = {k: [] for k in kinds}
            # CPU seconds per run of the processes on the console's path (schedstat, all threads).
            sup = self.supervisor_of(s)
            qemu_l = next((c for c in children_of(sup) if os.path.basename(cmdline(c)[0]).startswith(b"qemu")), None)
            paths = {"plain": {"qemu": p.pid},
                     "one": {"qemu": qemu_l, "supervisor": sup, "terminal": s.pid},
                     "two": {"qemu": qemu_l, "supervisor": sup, "terminal": s.pid}}
            cpu = {k: {} for k in kinds}
            log("  warm-up: one run of each (not counted)")
            for i in range(n + 1):
                for which in kinds[i % 3:] + kinds[:i % 3]:
                    v = self.attach_viewer(lab_l) if which == "two" else None
                    procs = dict(paths[which], **({"second terminal": v.pid} if v else {}))
                    c0 = {k: cpu_seconds(pid)[1] for k, pid in procs.items() if pid}
                    try:
                        if which == "plain":
                            t, nb, pr, rc = self.cat_once(p, [p], "plain QEMU")
                        elif which == "one":
                            t, nb, pr, rc = self.cat_once(s, [s], "labrun, one terminal")
                        else:
                            t, nb, pr, rc = self.cat_once(s, [s, v], "labrun, two terminals")
                        c1 = {k: cpu_seconds(pid)[1] for k, pid in procs.items() if pid}
                    finally:
                        if v:
                            self.detach_viewer(v)
                    if i > 0:
                        res[which].append(t)
                        sizes[which].append(nb)
                        per_read[which].append(pr)
                        reader_cpu[which].append(rc)
                        for k in c1:
                            cpu[which].setdefault(k, []).append(c1[k] - c0[k])
                if i > 0:
                    log(f"  run {i}: plain QEMU {res['plain'][-1]:.3f} s, labrun + 1 terminal {res['one'][-1]:.3f} s, "
                        f"+ 2 terminals {res['two'][-1]:.3f} s (bytes per read of the bench's reader: "
                        + ", ".join(f"{per_read[k][-1]:.0f}" for k in kinds) + "; its CPU: "
                        + ", ".join(f"{reader_cpu[k][-1]:.2f} s" for k in kinds) + ")")
            # Rotated at lab.conf's log_size (16 MiB) into console.log.1 …: all of them together.
            log_bytes = sum(os.path.getsize(os.path.join(lab_l, f)) for f in os.listdir(lab_l)
                            if re.fullmatch(r"console\.log(\.\d+)?", f))
            if log_bytes < (n * 2 + 2) * GUEST_FILE_BYTES:
                raise BenchError(f"the console log ({log_path}*) has {log_bytes} bytes: it did not record every cat")
        finally:
            self.quit_plain(p, qmp_p)
            self.quit_labrun(s)
        b = median(res["plain"])
        bspeed = mb / b
        for which, label, lim, what in (("one", "one terminal", 0.95, "the `labrun boot` terminal"),
                                        ("two", "two terminals", 0.9, "the `labrun boot` terminal and a `labrun attach` "
                                                                      "terminal (time until both have the marker)")):
            v = median(res[which])
            speed = mb / v
            ratio = b / v
            lo, blo = min(res[which]), min(res["plain"])
            self.add(f"console throughput, tiny guest `cat`, {label}", round(speed, 3), "MB/s", round(bspeed, 3),
                     round(ratio, 3), f">= {lim} (ratio)", ratio >= lim, runs=n,
                     samples=[round(mb / x, 3) for x in res[which]], baseline_samples=[round(mb / x, 3) for x in res["plain"]],
                     seconds=round(v, 3), baseline_seconds=round(b, 3),
                     seconds_samples=[round(x, 3) for x in res[which]],
                     baseline_seconds_samples=[round(x, 3) for x in res["plain"]],
                     fastest_ratio=round(blo / lo, 3), bytes_read=sizes[which][0], baseline_bytes_read=sizes["plain"][0],
                     bytes_per_read=round(median(per_read[which])), baseline_bytes_per_read=round(median(per_read["plain"])),
                     reader_cpu_seconds=round(median(reader_cpu[which]), 3),
                     baseline_reader_cpu_seconds=round(median(reader_cpu["plain"]), 3),
                     cpu_seconds={k: round(median(x), 3) for k, x in cpu[which].items()},
                     baseline_cpu_seconds={k: round(median(x), 3) for k, x in cpu["plain"].items()},
                     note=f"`cat` of a {mb:g} MB text file in the guest's shell, timed from writing the command until "
                          f"`END42` (echoed right after) is on {what}; labrun with its console log on "
                          f"(console.log {log_bytes / 1e6:.1f} MB after the runs); baseline: plain QEMU with labrun's "
                          f"arguments (`boot --dry-run`), stdio on a pty; both VMs up meanwhile, one cat at a time; "
                          f"medians {v:.3f} s vs {b:.3f} s (ratio = plain time / labrun time); fastest runs "
                          f"{lo:.3f} vs {blo:.3f} s (ratio {blo / lo:.3f}); median CPU per run: "
                          + ", ".join(f"{k} {median(x):.2f} s" for k, x in cpu[which].items())
                          + f", the bench's reader {median(reader_cpu[which]):.2f} s ({median(per_read[which]):.0f} bytes "
                          f"per read); plain: QEMU {median(cpu['plain']['qemu']):.2f} s, reader "
                          f"{median(reader_cpu['plain']):.2f} s ({median(per_read['plain']):.0f} bytes per read)")

    # --- 2 keystroke round trip ------------------------------------------------------------

    @staticmethod
    def round_trips(fd, n, warmup=200):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        lat = []
        for i in range(n + warmup):
            c = bytes([0x61 + i % 26])
            t0 = now_ns()
            os.write(fd, c)
            while True:
                if not poller.poll(2000):
                    raise BenchError(f"no echo of round trip {i}")
                got = os.read(fd, 64)
                if got.endswith(c):
                    break
            if i >= warmup:
                lat.append((now_ns() - t0) / 1000)
        return lat

    def echo_ready(self, s):
        # The echo must be flowing (labrun up, raw mode set, stand-in running) before timing.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s.drain()
            s.send(b"Z")
            t = time.monotonic() + 0.3
            while time.monotonic() < t:
                s.pump(0.05)
                if s.transcript.endswith(b"Z"):
                    time.sleep(0.2)
                    s.drain()
                    return
        raise BenchError(f"{s.name}: the echo stand-in never echoed")

    def keystroke_runs(self, qmp=True, relay=False):
        """Median-able p50/p99 lists per path: bare pty, labrun, and (relay=True) bench/relay.py,
        the smallest relay with labrun's topology (reference). Order rotates between runs."""
        env = dict(self.env, LABRUN_BENCH_STANDIN="echo", LABRUN_BENCH_QMP="1" if qmp else "0")
        kinds = ["bare", "labrun"] + (["relay"] if relay else [])
        out = {k: ([], []) for k in kinds}
        for i in range(RUNS["keystroke"]):
            for which in kinds[i % len(kinds):] + kinds[:i % len(kinds)]:
                if which == "bare":
                    s = self.session([self.standin], env=env, raw=True, name="bare echo")
                elif which == "relay":
                    s = self.session([self.python, os.path.join(self.root, "bench", "relay.py"), self.standin],
                                     env=env, name="relay echo")
                    self.record_children(s.pid)
                else:
                    s = self.labrun_boot(self.lab_stand, ["--qemu", self.standin], env=env, name="labrun+echo")
                    s.expect(b"[labrun] booting", 10)
                    self.record_children(s.pid)
                self.echo_ready(s)
                lat = self.round_trips(s.fd, ROUND_TRIPS)
                out[which][0].append(pct(lat, 50))
                out[which][1].append(pct(lat, 99))
                if which == "labrun":
                    self.quit_labrun(s)
                else:
                    self.finish(s)
            log(f"  run {i + 1}: " + "; ".join(f"{k} p50 {v[0][-1]:.1f} p99 {v[1][-1]:.1f} us" for k, v in out.items()))
        return out

    def keystroke_rows(self, out, suffix="", goal=True, note_extra=""):
        (lr50, lr99), (b50, b99) = out["labrun"], out["bare"]
        v50, v99, bb50, bb99 = median(lr50), median(lr99), median(b50), median(b99)
        add50, add99 = v50 - bb50, v99 - bb99
        self.add("keystroke round trip p50" + suffix, round(v50, 1), "us", round(bb50, 1), round(v50 / bb50, 2),
                 "(reported)", None, added=round(add50, 1), runs=len(lr50),
                 samples=[round(x, 1) for x in lr50], baseline_samples=[round(x, 1) for x in b50],
                 note=f"added {add50:.1f} us{note_extra}")
        self.add("keystroke round trip p99" + suffix, round(v99, 1), "us", round(bb99, 1), round(v99 / bb99, 2),
                 "added < 100 us" if goal else "(reported)", (add99 < 100) if goal else None, added=round(add99, 1),
                 runs=len(lr99), samples=[round(x, 1) for x in lr99], baseline_samples=[round(x, 1) for x in b99],
                 note=f"added {add99:.1f} us{note_extra}")

    def fig_keystroke(self):
        log(f"2 keystroke round trip: {ROUND_TRIPS} one-byte round trips, {RUNS['keystroke']} runs each "
            "(stand-in `cat` serving QMP, as QEMU does; and bench/relay.py as a reference)")
        self.note_foreign("keystroke")
        out = self.keystroke_runs(qmp=True, relay=True)
        self.keystroke_rows(out)
        (r50, r99), (b50, b99) = out["relay"], out["bare"]
        for p, r, b in (("p50", r50, b50), ("p99", r99, b99)):
            v, bb = median(r), median(b)
            self.add(f"keystroke round trip {p}, minimal relay (reference)", round(v, 1), "us", round(bb, 1),
                     round(v / bb, 2), "(reference)", None, added=round(v - bb, 1), runs=len(r),
                     samples=[round(x, 1) for x in r], baseline_samples=[round(x, 1) for x in b],
                     note=f"added {v - bb:.1f} us by bench/relay.py (Python poll loop, same two-pty topology as labrun): "
                          "the floor of any relay on this machine")
        log("2b the same with a stand-in that opens no sockets (labrun keeps retrying the QMP connect)")
        out = self.keystroke_runs(qmp=False)
        self.keystroke_rows(out, suffix=", no QMP", goal=False, note_extra="; stand-in without QMP socket")

    # --- QMP retry cost (no QMP: stand-in) --------------------------------------------------

    def standin_idle(self, qmp, seconds):
        env = dict(self.env, LABRUN_BENCH_STANDIN="idle", LABRUN_BENCH_QMP="1" if qmp else "0")
        s = self.labrun_boot(self.lab_stand, ["--qemu", self.standin], env=env, name="labrun+idle")
        s.expect(b"[labrun] booting", 10)
        self.record_children(s.pid)
        time.sleep(1)
        s.drain()
        sup = self.supervisor_of(s)
        c0 = cpu_seconds(sup)
        w0 = int(proc_status(sup, "voluntary_ctxt_switches"))
        time.sleep(seconds)
        c1 = cpu_seconds(sup)
        w1 = int(proc_status(sup, "voluntary_ctxt_switches"))
        self.quit_labrun(s)
        return (c1[1] - c0[1]) * 30 / seconds, (c1[0] - c0[0]) * 30 / seconds, (w1 - w0) / seconds

    def fig_noqmp_idle(self, seconds=10):
        log(f"supervisor CPU with an idle stand-in QEMU, without and with a QMP socket, {seconds} s each")
        self.note_foreign("no-QMP idle")
        ns_no, ticks_no, wake_no = self.standin_idle(False, seconds)
        ns_q, ticks_q, wake_q = self.standin_idle(True, seconds)
        self.add("supervisor CPU, no QMP (stand-in)", round(ns_no, 4), "s per 30 s", round(ns_q, 4),
                 round(ns_no / ns_q, 1) if ns_q > 0 else None, "(reported)", None,
                 wakeups_per_s=round(wake_no, 1), baseline_wakeups_per_s=round(wake_q, 1), ticks_per_30s=round(ticks_no, 3),
                 note=f"schedstat CPU; {wake_no:.0f} wake-ups/s (the 20 ms QMP connect retry) vs {wake_q:.1f}/s "
                      f"when the stand-in serves QMP (baseline); measured over {seconds} s, scaled to 30 s")

    # --- 5 boot to prompt ------------------------------------------------------------------

    def boot_once(self, which, lab, plain_argv):
        if which == "labrun":
            s = self.labrun_boot(lab, name="labrun boot")
        else:
            s = self.plain_qemu(lab, plain_argv, name="plain qemu boot")
        s.expect(READY, 60)
        t = (s.expect(PROMPT, 30) - s.t0) / 1e9
        if which == "labrun":
            self.record_children(s.pid)
            self.quit_labrun(s)
        else:
            self.quit_plain(s, os.path.join(lab, ".labrun", "qmp.sock"))
        return t

    def fig_boot(self):
        n = RUNS["boot"]
        log(f"5 boot to shell prompt: labrun boot vs plain QEMU with the same arguments, {n} runs each")
        self.note_foreign('boot')
        lab = self.lab_boot
        argv = self.dry_run_argv(lab)
        self.plain_argv_example = shlex.join(argv)
        log("  warm-up boot (plain QEMU, not counted)")
        self.boot_once("plain", lab, argv)
        lr, plain = [], []
        for i in range(n):
            for which in (("labrun", "plain") if i % 2 == 0 else ("plain", "labrun")):
                t = self.boot_once(which, lab, argv)
                (lr if which == "labrun" else plain).append(t)
            log(f"  run {i + 1}: labrun {lr[-1]:.3f} s, plain QEMU {plain[-1]:.3f} s")
        v, b = median(lr), median(plain)
        self.add("boot to shell prompt", round(v, 3), "s", round(b, 3), round(v / b, 3), "<= 1.05 (ratio)",
                 v / b <= 1.05, runs=n, samples=[round(x, 3) for x in lr],
                 baseline_samples=[round(x, 3) for x in plain],
                 note="issue 2 asks <= 1.10 and about 5 s; time from spawn until 'root@lab:' on the pty")

    def shell_answers(self, s, timeout=30):
        """Seconds from the session's spawn until the guest's shell answers a command."""
        s.send(b"echo r$((6*7))\r")
        return (s.expect(b"r42", timeout) - s.t0) / 1e9

    def fig_suspend(self):
        n = RUNS["suspend"]
        log(f"5b boot of a suspended VM (issue 11) vs a cold boot, both to a shell answer, {n} runs each")
        self.note_foreign('suspend')
        lab = self.new_lab("suspend")
        resumed, cold = [], []
        for i in range(n):
            for which in (("resume", "cold") if i % 2 == 0 else ("cold", "resume")):
                if which == "cold":
                    s = self.labrun_boot(lab, name="labrun cold boot")
                    s.expect(READY, 60)
                    s.expect(PROMPT, 30)
                    cold.append(self.shell_answers(s))
                    self.quit_labrun(s)
                    continue
                # Suspend a booted VM, then time the boot that resumes it.
                s = self.labrun_boot(lab, name="labrun to suspend")
                s.expect(READY, 60)
                s.expect(PROMPT, 30)
                capture([self.labrun, "--lab", lab, "suspend"], env=self.env)
                if s.wait_exit(20) is None:
                    raise BenchError("labrun did not end after `labrun suspend`")
                self.finish(s)
                s = self.labrun_boot(lab, name="labrun resume")
                s.expect(b"resumed the VM", 30)
                resumed.append(self.shell_answers(s))
                self.quit_labrun(s)
            log(f"  run {i + 1}: resumed {resumed[-1]:.3f} s, cold {cold[-1]:.3f} s")
        v, b = median(resumed), median(cold)
        self.add("boot of a suspended VM to a shell answer", round(v, 3), "s", round(b, 3), round(v / b, 3), "< 1 s",
                 v < 1, runs=n, samples=[round(x, 3) for x in resumed], baseline_samples=[round(x, 3) for x in cold],
                 note="`labrun suspend`, then time from spawning `labrun boot` until the resumed shell answers "
                      "`echo $((6*7))`; baseline: a cold `labrun boot` of the same lab to the same answer")

    # --- 5c-5f boot checkpoint, reset in place, make reset && make run (issue 11) -----------

    @staticmethod
    def expect_any(s, patterns, timeout):
        """The first of `patterns` to appear after the cursor (moved past it), and perf_counter_ns
        when it was read; BenchError with the screen when none comes within `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [(i, p) for p in patterns if (i := s.transcript.find(p, s.cursor)) >= 0]
            if hits:
                i, p = min(hits)
                s.cursor = i + len(p)
                return p, now_ns()
            left = deadline - time.monotonic()
            if left <= 0 or s.eof or s.proc.poll() is not None:
                s.drain()
                if any(s.transcript.find(p, s.cursor) >= 0 for p in patterns):
                    continue
                raise BenchError(f"{s.name}: none of {[p.decode() for p in patterns]} within {timeout} s "
                                 f"(exit {s.proc.poll()}); screen tail:\n{s.tail()}")
            s.pump(min(left, 0.2))

    def expect_resumed(self, s, timeout=30):
        """Waits for labrun's "resumed the boot checkpoint of" line: perf_counter_ns when it was read.
        A cold boot or a failed resume instead is an error, with the console text."""
        p, t = self.expect_any(s, [RESUMED] + NOT_RESUMED, timeout)
        if p != RESUMED:
            time.sleep(1)
            s.drain()
            raise BenchError(f"{s.name}: expected the boot checkpoint to be resumed, got {p.decode()!r}; "
                             f"screen tail:\n{s.tail()}")
        return t

    def answer_after(self, s, mark, timeout=30):
        """Sends the echo and waits for its answer: perf_counter_ns of the answer, and whether the
        shell prompt was on the console between `mark` (a transcript offset) and the answer."""
        s.send(ECHO)
        t = s.expect(ANSWER, timeout)
        seen = bytes(s.transcript[mark:s.cursor])
        return t, PROMPT in seen

    @staticmethod
    def resume_seconds(s, start):
        """The seconds labrun reports in its "resumed the boot checkpoint of … in X s" line."""
        m = re.search(rb"resumed the boot checkpoint of [^\r\n]* in ([0-9.]+) s instead of booting", bytes(s.transcript[start:]))
        return float(m.group(1)) if m else None

    def warm_checkpoint(self, s, what, timeout=60, prompt_timeout=30):
        """A boot of a fresh runtime layer (session `s`) that must leave a boot checkpoint behind:
        waits for labrun to keep one (or to resume one already there), without typing meanwhile
        (keys typed before the guest is ready make labrun skip the checkpoint)."""
        p, _ = self.expect_any(s, [RESUMED, KEPT] + NOT_RESUMED[2:], timeout + prompt_timeout)
        if p == KEPT:
            line = s.transcript[s.cursor - len(KEPT):].split(b"\n")[0].decode(errors="replace").strip()
            log(f"  warm-up ({what}): labrun {line}")
        elif p == RESUMED:
            log(f"  warm-up ({what}): the boot checkpoint was already there (resumed)")
        else:
            time.sleep(1)
            s.drain()
            raise BenchError(f"{s.name}: warm-up boot kept no boot checkpoint ({p.decode()!r}); screen tail:\n{s.tail()}")
        self.record_tree(s.pid)
        time.sleep(0.5)
        s.drain()
        s.cursor = len(s.transcript)
        s.send(ECHO)
        s.expect(ANSWER, 30)

    def reset_offline(self, lab):
        capture([self.labrun, "--lab", lab, "reset", "--yes"], env=self.env)

    def wait_qmp_running(self, s, qmp_path, timeout):
        """A QMP connection to a plain QEMU (connect retried every 5 ms), once it reports "running"."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                q = labpy.QMP(qmp_path, timeout=max(1, deadline - time.monotonic()))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline or s.proc.poll() is not None:
                    s.drain()
                    raise BenchError(f"{s.name}: no QMP at {qmp_path} (exit {s.proc.poll()}); screen tail:\n{s.tail()}")
                time.sleep(0.005)
        try:
            while q.cmd("query-status").get("status") != "running":
                if time.monotonic() > deadline:
                    raise BenchError(f"{s.name}: the VM is not running {timeout} s after the start")
                time.sleep(0.005)
        finally:
            q.close()

    def fresh_boot_figure(self, key, title, source, goal_s, ready_timeout, checkpoint_dir=True):
        """Boot of a fresh runtime layer (`labrun reset --yes` offline just before) to a shell answer:
        labrun resuming the golden image's boot checkpoint, against (a) a cold `labrun boot` of a lab
        with checkpoints off and (b) plain QEMU with labrun's arguments and `-loadvm` of an internal
        snapshot taken right after a boot; the three alternate, medians."""
        n = RUNS[key]
        tag = key.replace("-", "")
        ck = self.new_lab(f"{tag}", checkpoints=checkpoint_dir, source=source)
        cold = self.new_lab(f"{tag}cold", source=source)
        plain = self.new_lab(f"{tag}plain", source=source)
        snap = "benchboot"
        # Warm-up: the first boot of the fresh lab keeps the checkpoint (or resumes one already made).
        log("  warm-up boot of a fresh runtime layer (keeps the boot checkpoint; not counted)")
        s = self.labrun_boot(ck, name=f"labrun {tag} warm-up")
        self.warm_checkpoint(s, title, timeout=ready_timeout)
        self.quit_labrun(s)
        # The baseline's internal snapshot: a lab booted cold, at its prompt, saved by labrun.
        log(f"  internal snapshot '{snap}' of a freshly booted lab for plain QEMU -loadvm (not counted)")
        s = self.labrun_boot(plain, name=f"labrun {tag} to snapshot")
        s.expect(READY, ready_timeout)
        s.expect(PROMPT, 60)
        self.record_children(s.pid)
        time.sleep(0.5)  # the console quiet at the prompt, as when labrun keeps its checkpoint
        s.drain()
        capture([self.labrun, "--lab", plain, "snapshot", "create", snap], env=self.env)
        self.quit_labrun(s)
        argv = self.dry_run_argv(plain) + ["-loadvm", snap]
        qmp_plain = os.path.join(plain, ".labrun", "qmp.sock")
        kinds = ["checkpoint", "cold", "loadvm"]
        res = {k: [] for k in kinds}
        reported, line_at, prompt_shown = [], [], 0
        for i in range(n):
            for which in kinds[i % 3:] + kinds[:i % 3]:
                if which == "loadvm":
                    s = self.plain_qemu(plain, argv, name=f"plain qemu -loadvm ({tag})")
                    self.wait_qmp_running(s, qmp_plain, 60)
                    t, _ = self.answer_after(s, len(s.transcript))
                    res[which].append(s.since_start(t))
                    self.quit_plain(s, qmp_plain)
                    continue
                lab = ck if which == "checkpoint" else cold
                self.reset_offline(lab)
                s = self.labrun_boot(lab, name=f"labrun {which} ({tag})")
                if which == "checkpoint":
                    line_at.append(round(s.since_start(self.expect_resumed(s, 60)), 3))
                    mark = s.cursor - len(RESUMED)
                    t, shown = self.answer_after(s, s.cursor)
                    prompt_shown += shown
                    reported.append(self.resume_seconds(s, mark))
                else:
                    s.expect(READY, ready_timeout)
                    s.expect(PROMPT, 60)
                    t, _ = self.answer_after(s, s.cursor)
                self.record_children(s.pid)
                res[which].append(s.since_start(t))
                self.quit_labrun(s)
            log(f"  run {i + 1}: checkpoint {res['checkpoint'][-1]:.3f} s (resumed line at {line_at[-1]} s, labrun "
                f"reports resuming in {reported[-1]} s), cold {res['cold'][-1]:.3f} s, plain QEMU -loadvm {res['loadvm'][-1]:.3f} s")
        if prompt_shown < n:
            log(f"  note: the shell prompt was shown again after the resumed line in only {prompt_shown} of {n} runs")
        v, b, c = median(res["checkpoint"]), median(res["loadvm"]), median(res["cold"])
        self.add(f"boot of a fresh runtime layer to a shell answer ({title})", round(v, 3), "s", round(b, 3),
                 round(v / b, 3), f"< {goal_s:g} s", v < goal_s, runs=n,
                 samples=[round(x, 3) for x in res["checkpoint"]], baseline_samples=[round(x, 3) for x in res["loadvm"]],
                 cold_boot=round(c, 3), cold_samples=[round(x, 3) for x in res["cold"]], ratio_to_cold=round(v / c, 3),
                 labrun_reported_resume_seconds=reported, resumed_line_seconds=line_at,
                 prompt_shown_after_resume=prompt_shown,
                 note=f"`labrun --lab L reset --yes` with the VM stopped, then time from spawning `labrun boot` until "
                      f"the shell answers `echo r$((6*7))`, sent once labrun's \"resumed the boot checkpoint of\" line "
                      f"is on the console; baseline: plain QEMU with labrun's arguments (`boot --dry-run`) plus "
                      f"`-loadvm {snap}`, an internal snapshot taken by `labrun snapshot create` at the prompt of a "
                      f"freshly booted lab, the echo sent once QMP says running; also a cold `labrun boot` of a lab "
                      f"with `checkpoints = off`, reset the same way, to the same answer: median {c:.3f} s "
                      f"(ratio {v / c:.3f})")

    def fig_checkpoint(self):
        log(f"5c boot of a fresh runtime layer (issue 11 boot checkpoint), tiny guest: resume vs plain QEMU "
            f"-loadvm vs cold boot, {RUNS['checkpoint']} runs each")
        self.note_foreign("checkpoint")
        self.fresh_boot_figure("checkpoint", "tiny guest", self.golden, 0.3, 60)

    @staticmethod
    def shared_build_lock(path, what, wait=600):
        """A shared flock on a guest builder's lock file (the builder takes it exclusively): waits
        up to `wait` s for a build in progress to finish. The fd (close it to release), or None
        when there is no lock file (never built)."""
        if not os.path.exists(path):
            return None
        fd = os.open(path, os.O_RDONLY)
        deadline = time.monotonic() + wait
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise BenchError(f"{what} is being rebuilt ({path} held for {wait} s)")
                if not said:
                    log(f"  waiting for the build of {what} to finish ({path})")
                    said = True
                time.sleep(1)

    def fig_checkpoint_debian(self):
        deb = os.path.join(self.root, "debian")
        # The Debian images are used in place (GiBs: not copied as run.sh copies the tiny guest).
        # A build in progress is waited for, and none can start while this figure holds the lock.
        lock = self.shared_build_lock(os.path.join(deb, "guest-build", ".build.lock"), "the Debian guest")
        try:
            missing = [p for p in ("lab.conf", "debian-rootfs.qcow2", "guest-build/vmlinux") if not os.path.exists(os.path.join(deb, p))]
            if missing:
                log(f"5d SKIPPED: the full Debian guest is not built ({deb}: no {', '.join(missing)}; `make rootfs` builds it)")
                return
            log(f"5d boot of a fresh runtime layer, full Debian guest ({deb}): resume vs plain QEMU -loadvm vs cold boot, "
                f"{RUNS['checkpoint-debian']} runs each (its checkpoints in the work directory, not in {deb})")
            self.note_foreign("checkpoint debian")
            self.fresh_boot_figure("checkpoint-debian", "Debian guest", deb, 1.5, 240,
                                   checkpoint_dir=os.path.join(self.work, "debian-checkpoints"))
        finally:
            if lock is not None:
                os.close(lock)

    def fig_reset(self):
        n = RUNS["reset"]
        log(f"5e reset in place (issue 11) vs stop + offline reset + cold boot, both to a shell answer, {n} runs each")
        self.note_foreign("reset in place")
        lab = self.new_lab("reset", checkpoints=True)
        old = self.new_lab("resetcold")
        log("  warm-up boot of a fresh runtime layer (makes sure the boot checkpoint exists; not counted)")
        s = self.labrun_boot(lab, name="labrun reset warm-up")
        self.warm_checkpoint(s, "reset")
        self.quit_labrun(s)
        inplace, oldway, reported, prompt_shown, cli, line_at = [], [], [], 0, [], []
        out_path = os.path.join(self.work, "reset-stdout")
        for i in range(n):
            for which in (("inplace", "old") if i % 2 == 0 else ("old", "inplace")):
                if which == "inplace":
                    # A VM booted from the checkpoint, its shell answering.
                    self.reset_offline(lab)
                    s = self.labrun_boot(lab, name="labrun reset in place")
                    self.expect_resumed(s, 60)
                    s.send(ECHO)
                    s.expect(ANSWER, 30)
                    self.record_children(s.pid)
                    time.sleep(0.5)
                    s.drain()
                    s.cursor = mark = len(s.transcript)
                    out = os.open(out_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                    devnull = os.open(os.devnull, os.O_RDONLY)
                    argv = [self.labrun, "--lab", lab, "reset", "--yes"]
                    t0 = now_ns()
                    pid = os.posix_spawnp(argv[0], argv, self.env, file_actions=[
                        (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, out, 2)])
                    REG.add(pid)
                    try:
                        line_at.append(round((self.expect_resumed(s, 30) - t0) / 1e9, 3))
                        t, shown = self.answer_after(s, s.cursor)
                    finally:
                        _, status = os.waitpid(pid, 0)
                        os.lseek(out, 0, os.SEEK_SET)
                        said = os.read(out, 1 << 16).decode(errors="replace").strip()
                        os.close(out)
                        os.close(devnull)
                    code = os.waitstatus_to_exitcode(status)
                    if code != 0:
                        raise BenchError(f"`labrun reset --yes` on the running VM exited {code}: {said}")
                    inplace.append((t - t0) / 1e9)
                    prompt_shown += shown
                    reported.append(self.resume_seconds(s, mark))
                    m = re.search(r"([0-9.]+) s so far", said)
                    cli.append(float(m.group(1)) if m else None)
                    if b"`labrun reset` requested" not in s.transcript[mark:]:
                        log("  note: no \"`labrun reset` requested\" line on the console")
                    self.record_children(s.pid)
                    self.quit_labrun(s)
                else:
                    # The old way: a VM booted cold (checkpoints off), its shell answering; then
                    # `labrun stop`, `labrun reset --yes` and a cold `labrun boot`, all timed.
                    s = self.labrun_boot(old, name="labrun old-way first boot")
                    s.expect(READY, 60)
                    s.expect(PROMPT, 30)
                    s.send(ECHO)
                    s.expect(ANSWER, 30)
                    self.record_children(s.pid)
                    time.sleep(0.5)
                    s.drain()
                    t0 = now_ns()
                    spawn_time([self.labrun, "--lab", old, "stop"], env=self.env)
                    if s.wait_exit(30) is None:
                        raise BenchError("labrun did not end after `labrun stop`")
                    self.finish(s)
                    spawn_time([self.labrun, "--lab", old, "reset", "--yes"], env=self.env)
                    s = self.labrun_boot(old, name="labrun old-way cold boot")
                    s.expect(READY, 60)
                    s.expect(PROMPT, 30)
                    t, _ = self.answer_after(s, s.cursor)
                    oldway.append((t - t0) / 1e9)
                    self.record_children(s.pid)
                    self.quit_labrun(s)
            log(f"  run {i + 1}: reset in place {inplace[-1]:.3f} s (resumed line at {line_at[-1]} s, labrun reports "
                f"resuming in {reported[-1]} s), "
                f"stop + reset + cold boot {oldway[-1]:.3f} s")
        if prompt_shown < n:
            log(f"  note: the shell prompt was shown again after the resumed line in only {prompt_shown} of {n} resets in place")
        v, b = median(inplace), median(oldway)
        self.add("reset in place to a shell answer", round(v, 3), "s", round(b, 3), round(v / b, 3), "< 1 s", v < 1,
                 runs=n, samples=[round(x, 3) for x in inplace], baseline_samples=[round(x, 3) for x in oldway],
                 labrun_reported_resume_seconds=reported, resumed_line_seconds=line_at, cli_reported_seconds_so_far=cli,
                 prompt_shown_after_resume=prompt_shown,
                 note="a VM booted from the boot checkpoint, its shell answering; time from spawning `labrun --lab L "
                      "reset --yes` (another process) until the same console's shell answers `echo r$((6*7))`, sent "
                      "once the \"resumed the boot checkpoint of\" line is on it; baseline: the old way on a lab with "
                      "`checkpoints = off`: `labrun stop` (and the console's labrun gone), offline `labrun reset --yes`, "
                      "a cold `labrun boot` to the same answer")

    def make_argv(self, lab):
        """`make reset YES=1 && make run` as a user types it in the checkout, with this bench's
        labrun (LABRUN=) and the lab in LABRUN_LAB. -o: make never rebuilds .build/release/labrun
        (another build may own it) or builds a guest image for `run`'s prerequisites."""
        keep = "-o .build/release/labrun -o debian-rootfs.qcow2 -o debian/debian-rootfs.qcow2"
        b = shlex.quote(self.labrun)
        script = (f"cd {shlex.quote(self.root)} && make -s {keep} reset YES=1 LABRUN={b} "
                  f"&& make -s {keep} run LABRUN={b}")
        env = {k: v for k, v in self.env.items() if k not in MAKE_VARS}
        env["LABRUN_LAB"] = lab
        return ["sh", "-c", script], env

    @staticmethod
    def free_port():
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as so:
            so.bind(("127.0.0.1", 0))
            return so.getsockname()[1]

    def fig_makerun(self):
        n = RUNS["makerun"]
        log(f"5f `make reset YES=1 && make run` (gdb stub on) to a shell answer: boot checkpoint vs cold, {n} runs each")
        self.note_foreign("make reset && make run")
        if not shutil.which("make") or not os.path.exists(os.path.join(self.root, "Makefile")):
            log("5f SKIPPED: no make or no Makefile in the checkout")
            return
        lab = self.new_lab("makerun", checkpoints=True, conf=[f"gdb_port = {self.free_port()}"])
        cold = self.new_lab("makeruncold", conf=[f"gdb_port = {self.free_port()}"])
        argv_ck, env_ck = self.make_argv(lab)
        argv_cold, env_cold = self.make_argv(cold)
        log(f"  command: {shlex.join(argv_ck)}")
        log("  warm-up: the same command on each lab (keeps the `boot --debug` checkpoint; not counted)")
        s = self.session(argv_ck, env=env_ck, name="make run warm-up")
        self.warm_checkpoint(s, "make run")
        self.quit_labrun(s)
        s = self.session(argv_cold, env=env_cold, name="make run cold warm-up")
        s.expect(READY, 60)
        s.expect(PROMPT, 30)
        self.record_tree(s.pid)
        self.quit_labrun(s)
        res = {"checkpoint": [], "cold": []}
        reported, line_at, prompt_shown = [], [], 0
        for i in range(n):
            for which in (("checkpoint", "cold") if i % 2 == 0 else ("cold", "checkpoint")):
                if which == "checkpoint":
                    s = self.session(argv_ck, env=env_ck, name="make reset && make run")
                    line_at.append(round(s.since_start(self.expect_resumed(s, 60)), 3))
                    mark = s.cursor - len(RESUMED)
                    t, shown = self.answer_after(s, s.cursor)
                    prompt_shown += shown
                    reported.append(self.resume_seconds(s, mark))
                else:
                    s = self.session(argv_cold, env=env_cold, name="make reset && make run (cold)")
                    s.expect(READY, 60)
                    s.expect(PROMPT, 30)
                    t, _ = self.answer_after(s, s.cursor)
                self.record_tree(s.pid)
                res[which].append(s.since_start(t))
                code = self.quit_labrun(s)
                if code != 0:
                    raise BenchError(f"{s.name}: make exited {code}; screen tail:\n{s.tail()}")
            log(f"  run {i + 1}: checkpoint {res['checkpoint'][-1]:.3f} s (resumed line at {line_at[-1]} s, labrun "
                f"reports resuming in {reported[-1]} s), cold {res['cold'][-1]:.3f} s")
        v, b = median(res["checkpoint"]), median(res["cold"])
        self.add("make reset && make run to a shell answer", round(v, 3), "s", round(b, 3), round(v / b, 3), "< 1 s",
                 v < 1, runs=n, samples=[round(x, 3) for x in res["checkpoint"]],
                 baseline_samples=[round(x, 3) for x in res["cold"]], labrun_reported_resume_seconds=reported,
                 resumed_line_seconds=line_at, prompt_shown_after_resume=prompt_shown,
                 note="VM stopped; time from spawning `sh -c 'make -s reset YES=1 && make -s run'` (in the checkout, "
                      "LABRUN_LAB=<lab>, LABRUN=<this labrun>, lab.conf gdb_port = a free port; `-o` keeps make from "
                      "rebuilding .build/release/labrun or a guest image) until the shell answers `echo r$((6*7))`, "
                      "sent once \"resumed the boot checkpoint of\" is on the console; baseline: the same command "
                      "on a lab with `checkpoints = off` (a cold `boot --debug`)")

    # --- 3 live snapshots + 6 idle cost -----------------------------------------------------

    def measure_idle(self, sup):
        log(f"  idle guest: measuring the labrun process over {IDLE_SECONDS} s")
        c0 = cpu_seconds(sup)
        w0 = int(proc_status(sup, "voluntary_ctxt_switches"))
        qemu = [c for c in children_of(sup) if b"qemu" in b" ".join(cmdline(c)[:1])]
        q0 = cpu_seconds(qemu[0]) if qemu else None
        time.sleep(IDLE_SECONDS)
        c1 = cpu_seconds(sup)
        w1 = int(proc_status(sup, "voluntary_ctxt_switches"))
        q1 = cpu_seconds(qemu[0]) if qemu else None
        ticks, ns = c1[0] - c0[0], c1[1] - c0[1]
        qcpu = (q1[0] - q0[0]) if qemu else None
        self.add("supervisor idle CPU", round(ticks, 3), f"s per {IDLE_SECONDS} s", round(qcpu, 3) if qcpu is not None else None,
                 round(ticks / qcpu, 4) if qcpu else None, "< 0.01 s", ticks < 0.01,
                 schedstat_seconds=round(ns, 6), wakeups=w1 - w0,
                 note=f"utime+stime; schedstat {ns * 1e3:.2f} ms, {w1 - w0} wake-ups; "
                      f"baseline = QEMU's own CPU in the same {IDLE_SECONDS} s (reference)")

    def labrun_snapshot(self, lab, op, name):
        """One timed `labrun snapshot OP --json NAME`: its wall time and the seconds labrun reports for
        its QMP work (None when it reports none). A labrun without --json (usage error, exit 64)
        is run without it from then on, and its sentence read instead."""
        argv = [self.labrun, "--lab", lab, "snapshot", op]
        if self.snapshot_json is not False:
            try:
                t, _, out = spawn_time(argv + ["--json", name], env=self.env, capture=True)
                self.snapshot_json = True
                return t, reported_seconds(out)
            except SpawnFailed as e:
                if e.code != 64 or self.snapshot_json:
                    raise
                log(f"  note: this labrun has no `snapshot {op} --json` ({e}); reading its sentence instead")
                self.snapshot_json = False
        t, _, out = spawn_time(argv + [name], env=self.env, capture=True)
        return t, reported_seconds(out)

    def fig_live(self):
        n = RUNS["live"]
        log("6 supervisor idle cost + 3 live snapshots (two rounds: each lab once under labrun, once plain QEMU)")
        self.note_foreign('idle + live snapshots')
        res = {k: ([], [], []) for k in ("create", "restore", "delete")}  # labrun, direct, labrun's own QMP time
        hwm = []
        rounds = [(self.lab_live, self.lab_live_plain), (self.lab_live_plain, self.lab_live)]
        for r, (lab_l, lab_p) in enumerate(rounds):
            # labrun first: it refuses to boot while another QEMU holds a layer of its chain (the golden).
            log(f"  round {r + 1}: labrun on {os.path.basename(lab_l)}, plain QEMU on {os.path.basename(lab_p)}")
            s = self.labrun_boot(lab_l, name="labrun live")
            s.expect(READY, 60)
            s.expect(PROMPT, 30)
            self.record_children(s.pid)
            sup = self.supervisor_of(s)
            if r == 0:
                self.hwm_prompt = int(proc_status(sup, "VmHWM")) / 1024
            time.sleep(2)
            s.drain()
            if r == 0:
                self.measure_idle(sup)
            p = self.plain_qemu(lab_p, self.dry_run_argv(lab_p), name="plain live")
            p.expect(READY, 60)
            p.expect(PROMPT, 30)
            time.sleep(1)
            qmp_p = os.path.join(lab_p, ".labrun", "qmp.sock")
            cycles = (n + 1) // 2 if r == 0 else n // 2
            for i in range(cycles):
                name = f"bench{r}{i}"
                for which in (("labrun", "direct") if i % 2 == 0 else ("direct", "labrun")):
                    for op, hmp in (("create", "savevm"), ("restore", "loadvm"), ("delete", "delvm")):
                        s.drain(); p.drain()
                        if which == "labrun":
                            t, reported = self.labrun_snapshot(lab_l, op, name)
                            res[op][0].append(t)
                            res[op][2].append(reported)
                        else:
                            t0 = now_ns()
                            q = labpy.QMP(qmp_p)
                            q.hmp(f"{hmp} {name}")
                            q.close()
                            res[op][1].append((now_ns() - t0) / 1e9)
                log("  cycle {}: labrun {}; direct {}".format(
                    i + 1, " ".join(f"{k} {v[0][-1]:.3f}" for k, v in res.items()),
                    " ".join(f"{k} {v[1][-1]:.3f}" for k, v in res.items())))
            hwm.append(int(proc_status(sup, "VmHWM")) / 1024)
            self.quit_plain(p, qmp_p)
            self.quit_labrun(s)
        for op in ("create", "restore", "delete"):
            lr, d, inner = res[op]
            v, b = median(lr), median(d)
            goal = op != "delete"
            extra = {}
            note = f"`labrun snapshot {op}` process end to end vs a direct QMP client (connect, qmp_capabilities, HMP) on a plain QEMU"
            pairs = [(x, y) for x, y in zip(lr, inner) if y is not None]
            if pairs:
                over = median([x - y for x, y in pairs])
                extra = {"labrun_reported_seconds": [round(y, 3) for _, y in pairs], "outside_qmp_ms": round(over * 1e3, 1)}
                note += f"; median {over * 1e3:.1f} ms of each labrun run falls outside the seconds the supervisor reports for its QMP work"
            self.add(f"live snapshot {op}", round(v, 3), "s", round(b, 3), round(v / b, 3),
                     "<= 1.10 (ratio)" if goal else "(reported)", (v / b <= 1.10) if goal else None,
                     runs=len(lr), samples=[round(x, 3) for x in lr], baseline_samples=[round(x, 3) for x in d],
                     added_ms=round((v - b) * 1e3, 1), note=note, **extra)
        self.supervisor_hwm = (self.hwm_prompt, max(hwm))

    # --- 4 offline snapshots ---------------------------------------------------------------

    def fig_offline(self):
        n = RUNS["offline"]
        log(f"4 offline snapshot create/list vs bare qemu-img, {n} runs each")
        self.note_foreign('offline snapshots')
        lab = self.lab_offline
        img = os.path.join(lab, "debian-runtime.qcow2")
        for k in range(3):  # something to list
            capture(["qemu-img", "snapshot", "-c", f"pre{k}", img])
        cr, cb, lr, lb = [], [], [], []
        for i in range(n):
            for which in (("labrun", "bare") if i % 2 == 0 else ("bare", "labrun")):
                name = f"off{i}{which[0]}"
                if which == "labrun":
                    t, _ = spawn_time([self.labrun, "--lab", lab, "snapshot", "create", name], env=self.env)
                    cr.append(t)
                    capture(["qemu-img", "snapshot", "-d", name, img])
                    t, _ = spawn_time([self.labrun, "--lab", lab, "snapshot", "list"], env=self.env)
                    lr.append(t)
                else:
                    t, _ = spawn_time(["qemu-img", "snapshot", "-c", name, img], env=self.env)
                    cb.append(t)
                    capture(["qemu-img", "snapshot", "-d", name, img])
                    t, _ = spawn_time(["qemu-img", "snapshot", "-l", img], env=self.env)
                    lb.append(t)
        for what, v, b, sv, sb in (("create", median(cr), median(cb), cr, cb), ("list", median(lr), median(lb), lr, lb)):
            self.add(f"offline snapshot {what}", round(v * 1e3, 1), "ms", round(b * 1e3, 1), round(v / b, 2),
                     "<= 1.5 (ratio)", v / b <= 1.5, runs=n, samples=[round(x * 1e3, 1) for x in sv],
                     baseline_samples=[round(x * 1e3, 1) for x in sb],
                     note=f"`labrun snapshot {what}` on a stopped lab vs `qemu-img snapshot {'-c' if what == 'create' else '-l'}`")

    # --- 7 CLI start -----------------------------------------------------------------------

    def fig_cli(self):
        n = RUNS["cli"]
        log(f"7 CLI start: `labrun status` on a stopped lab vs /bin/true, {n} runs each")
        self.note_foreign('CLI start')
        lab = self.lab_offline
        lr, tr = [], []
        for i in range(n + 3):
            t, _ = spawn_time([self.labrun, "--lab", lab, "status"], env=self.env)
            b, _ = spawn_time(["/bin/true"], env=self.env)
            if i >= 3:  # warm-up
                lr.append(t); tr.append(b)
        v, b = median(lr), median(tr)
        self.add("CLI start (labrun status, stopped)", round(v * 1e3, 2), "ms", round(b * 1e3, 2), round(v / b, 1),
                 "< 30 ms", v * 1e3 < 30, runs=n, p90_ms=round(pct(lr, 90) * 1e3, 2),
                 note="baseline: /bin/true spawned the same way (posix_spawn + wait4), for reference")

    def fig_rss(self):
        at_prompt, peak = self.supervisor_hwm
        self.add("supervisor peak RSS", round(peak, 1), "MiB", round(at_prompt, 1), round(peak / at_prompt, 2),
                 "< 20 MiB", peak < 20,
                 note="VmHWM of the labrun supervisor after boot, 30 s idle and its live-snapshot cycles (max of the two "
                      "rounds); baseline: its VmHWM when the guest's prompt appeared (growth from the snapshot work)")

    # --- report ----------------------------------------------------------------------------

    def machine(self):
        cpu = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        try:
            commit = capture(["git", "-C", self.root, "rev-parse", "--short", "HEAD"]).strip()
            dirty = subprocess.run(["git", "-C", self.root, "diff", "--quiet", "HEAD", "--", "Sources", "Package.swift"]).returncode
            if dirty:
                commit += " (+ uncommitted changes in Sources)"
            head_time = int(capture(["git", "-C", self.root, "log", "-1", "--format=%ct"]).strip())
            if os.stat(self.labrun).st_mtime < head_time:
                commit += " (WARNING: the labrun binary is older than this commit: rebuild, or `make bench`)"
        except Exception:
            commit = "unknown"
        return {
            "cpu": cpu, "cores": os.cpu_count(), "qemu": self.qemu_version, "labrun_commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "kernel": platform.release(),
            "accel": "tcg", "python": platform.python_version(), "labrun": self.labrun,
            "labrun_built": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(self.labrun).st_mtime)),
            "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
            "other_qemu_processes": self.foreign,
            "cpu_busy_percent_before_figure": self.busy_before,
        }

    def write(self, total_s):
        m = self.machine()
        m["bench_seconds"] = round(total_s, 1)
        # results.json: the array of figures, {name, value, unit, baseline, ratio, goal, pass} plus
        # runs, raw samples and notes; the machine they were measured on goes beside it.
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump([e.to_json() for e in self.results], f, indent=1)
            f.write("\n")
        with open(os.path.join(self.out, "results.machine.json"), "w") as f:
            json.dump(dict(m, runs_per_figure=RUNS), f, indent=1)
            f.write("\n")

        def fmt(x):
            return "—" if x is None else (f"{x:g}" if isinstance(x, float) else str(x))

        lines = ["# labrun benchmark results", "",
                 f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, accel {m['accel']}  ",
                 f"QEMU: {m['qemu']}  ",
                 f"labrun: commit {m['labrun_commit']}, release build of {m['labrun_built']}  ",
                 f"Date: {m['date']}; whole benchmark {m['bench_seconds']} s; load average at the end {' '.join(m['loadavg_at_end'])}  ",
                 ("Other QEMU processes (not this benchmark's) were running during: "
                  + "; ".join(f"{k.strip()} (pids {' '.join(map(str, v))})" for k, v in self.foreign.items())
                  + " — those figures may be noisy.  ") if self.foreign else "No other QEMU processes were running during the benchmark.  ",
                 "Machine CPU busy (both cores, 0.5 s sample while the benchmark itself was idle) before each figure: "
                 + ", ".join(f"{k} {v}%" for k, v in self.busy_before.items()) + "  ",
                 "Each value is the median of its runs (runs column); the baseline is measured in the same session, "
                 "alternating with labrun.", "",
                 "| figure | value | baseline | ratio | goal | verdict | runs | notes |",
                 "|---|---|---|---|---|---|---|---|"]
        for e in self.results:
            verdict = "**MISS**" + e.miss_by() if e.verdict == "MISS" else e.verdict
            note = e.note or ""
            if e.fastest:
                lo, blo, r = e.fastest
                note += f"; fastest runs: {lo:g} vs {blo:g} {e.unit} (ratio {r:g})"
            lines.append(f"| {e.name} | {fmt(e.value)} {e.unit} | {fmt(e.baseline)} | {fmt(e.ratio)} "
                         f"| {e.goal} | {verdict} | {'' if e.runs is None else e.runs} | {note} |")
        lines += ["", "Reproduce: `make bench` (needs the built guest: `make guest`). Raw samples are in results.json, "
                  "the machine in results.machine.json.", ""]
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write("\n".join(lines))
        print("\n".join(lines))


def _interrupted(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    global REG, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--golden", required=True, help="the lab whose images `labrun init` references")
    ap.add_argument("--labrun", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="", help="comma list of figures: " + ",".join(FIGURES))
    ap.add_argument("--runs", default="", help="comma list of FIGURE=N: runs for those figures instead of the defaults")
    a = ap.parse_args()
    for item in filter(None, a.runs.split(",")):
        k, _, v = item.partition("=")
        if k not in RUNS or not v.isdigit() or int(v) < 1:
            ap.error(f"--runs: expected FIGURE=N with FIGURE one of {', '.join(RUNS)}, got {item!r}")
        RUNS[k] = int(v)
    only = set(filter(None, a.only.split(",")))
    if only - set(FIGURES):
        ap.error(f"--only: unknown figure(s) {', '.join(sorted(only - set(FIGURES)))}; known: {', '.join(FIGURES)}")
    REG = Registry(os.path.join(a.work, "pids"))
    WORK = a.work
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGHUP, _interrupted)
    started = time.monotonic()
    b = Bench(a)
    want = (lambda k: not only or k in only)
    try:
        # These labs have `checkpoints = off` (new_lab's default): their figures time cold boots.
        b.lab_stand = b.new_lab("stand")     # stand-in figures (its images are never opened)
        b.lab_boot = b.new_lab("boot")
        b.lab_live = b.new_lab("liveA")
        b.lab_live_plain = b.new_lab("liveB")
        b.lab_offline = b.new_lab("offline")
        if want("throughput"): b.fig_throughput()
        if want("guest-throughput"): b.fig_guest_throughput()
        if want("detector"): b.fig_detector()
        if want("keystroke"): b.fig_keystroke()
        if want("noqmp"): b.fig_noqmp_idle()
        if want("boot"): b.fig_boot()
        if want("suspend"): b.fig_suspend()
        if want("checkpoint"): b.fig_checkpoint()
        if want("checkpoint-debian"): b.fig_checkpoint_debian()
        if want("reset"): b.fig_reset()
        if want("makerun"): b.fig_makerun()
        if want("live"): b.fig_live()
        if want("offline"): b.fig_offline()
        if want("cli"): b.fig_cli()
        if want("live"): b.fig_rss()
        b.write(time.monotonic() - started)
    finally:
        for s in list(b.sessions):
            s.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except labpy.Error as e:  # BenchError, or a console or QMP failure
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as e:
        print(f"bench: interrupted ({e}); the processes it started were ended", file=sys.stderr)
        sys.exit(130)
