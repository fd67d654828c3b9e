#!/usr/bin/env python3
"""A stand-in "QEMU" for `make bench`. labrun starts it with QEMU's arguments (via --qemu); it
ignores them except the QMP socket path. What it does comes from the environment (inherited
through labrun):

  LABRUN_BENCH_STANDIN=produce:BYTES  write BYTES zero bytes to stdout as fast as it can, then exit 0
  LABRUN_BENCH_STANDIN=echo           echo stdin to stdout with `cat`
  LABRUN_BENCH_STANDIN=idle           do nothing until told to quit
  LABRUN_BENCH_QMP=0                  open no sockets (labrun then keeps retrying to connect)

Like QEMU, it listens on every `-chardev socket,…,path=…,server=on` of its arguments: on the
one with id=qmp it serves a minimal QMP (greeting, qmp_capabilities, quit; anything else gets an
error), the others (human monitor, guest-agent port) accept and discard. labrun thus settles into
its steady state (QMP connected, no retry timer). The work itself runs in a child process (`cat`
exec'd, or the producer loop) on the same stdio; this process only serves QMP and ends when the
child ends, on `quit`, or on SIGTERM. Run without QEMU arguments (the bare-pty baselines) there
is no QMP and the same child does the same work."""
import json
import os
import select
import signal
import socket
import sys


def produce(total):
    block = bytes(65536)
    view = memoryview(block)
    left = total
    while left > 0:
        left -= os.write(1, view[: min(len(block), left)])


def opt_value(opts, key):
    """A value from QemuOpts text ("k=v,k=v", commas inside values doubled)."""
    i = ("," + opts).find("," + key + "=")
    if i < 0:
        return None
    j = i + len(key) + 1
    out = []
    while j < len(opts):
        if opts[j] == ",":
            if opts[j + 1:j + 2] == ",":
                out.append(","); j += 2; continue
            break
        out.append(opts[j]); j += 1
    return "".join(out)


def server_sockets(argv):
    """{chardev id: path} of every `-chardev socket,…,server=on` QEMU would listen on."""
    out = {}
    for i, a in enumerate(argv[:-1]):
        o = argv[i + 1]
        if a == "-chardev" and o.startswith("socket,") and opt_value(o, "server") in ("on", "yes"):
            if opt_value(o, "path"):
                out[opt_value(o, "id")] = opt_value(o, "path")
    return out


def main():
    mode = os.environ.get("LABRUN_BENCH_STANDIN", "idle")
    child = os.fork()
    if child == 0:
        try:
            if mode.startswith("produce:"):
                produce(int(mode.split(":", 1)[1]))
                os._exit(0)
            if mode == "echo":
                os.execvp("cat", ["cat"])
            signal.pause()
        finally:
            os._exit(1)
    # This process no longer touches the console.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)

    def end(code):
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass
        os._exit(code)

    signal.signal(signal.SIGTERM, lambda *_: end(0))
    signal.signal(signal.SIGHUP, lambda *_: end(0))
    pidfd = os.pidfd_open(child)
    sockets = server_sockets(sys.argv[1:])
    if os.environ.get("LABRUN_BENCH_QMP", "1") == "0":
        sockets = {}
    listeners = {}  # listening socket -> chardev id
    for cid, path in sockets.items():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(4)
        listeners[ls] = cid
    conns = {}   # QMP connections -> unparsed input
    quiet = set()  # other chardev connections (monitor, agent port): accepted, input discarded
    greeting = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": "bench stand-in"},
                        "capabilities": []}}
    while True:
        watch = [pidfd] + list(listeners) + list(conns) + list(quiet)
        ready, _, _ = select.select(watch, [], [])
        if pidfd in ready:
            _, status = os.waitpid(child, 0)
            sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
        for ls in [r for r in ready if r in listeners]:
            c, _ = ls.accept()
            if listeners[ls] == "qmp":
                c.sendall(json.dumps(greeting).encode() + b"\r\n")
                conns[c] = b""
            else:
                quiet.add(c)
        for c in [r for r in ready if r in quiet]:
            if not c.recv(65536):
                quiet.discard(c)
                c.close()
        for c in [c for c in ready if c in conns]:
            data = c.recv(65536)
            if not data:
                del conns[c]
                c.close()
                continue
            buf = conns[c] + data
            *lines, conns[c] = buf.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                ex = msg.get("execute")
                reply = {"return": {}} if ex in ("qmp_capabilities", "quit") else \
                    {"error": {"class": "CommandNotFound", "desc": f"stand-in: {ex} not supported"}}
                if "id" in msg:
                    reply["id"] = msg["id"]
                c.sendall(json.dumps(reply).encode() + b"\r\n")
                if ex == "quit":
                    end(0)


if __name__ == "__main__":
    main()
