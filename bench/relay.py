#!/usr/bin/env python3
"""The smallest relay with labrun's topology, as a reference for `make bench`: it opens a pty,
starts a program (argv) on its secondary as labrun starts QEMU, puts its own terminal in raw
mode and copies bytes both ways with poll(), writing each chunk at once. No escape keys, no
QMP, no buffering policy: what is left of labrun's added latency over a bare pty when this
relay stands in its place is the cost of the second pty hop and of one more process, not of
labrun's code."""
import os
import select
import subprocess
import sys
import termios
import tty


def main():
    argv = sys.argv[1:]
    mfd, sfd = os.openpty()
    tty.setraw(sfd, termios.TCSANOW)
    old = termios.tcgetattr(0)
    tty.setraw(0, termios.TCSANOW)
    try:
        child = subprocess.Popen(argv, stdin=sfd, stdout=sfd, stderr=sfd, start_new_session=True)
        os.close(sfd)
        p = select.poll()
        p.register(0, select.POLLIN)
        p.register(mfd, select.POLLIN)
        while True:
            for fd, _ in p.poll():
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    if fd == mfd:
                        child.wait()
                        return child.returncode
                    p.unregister(0)
                    continue
                out = mfd if fd == 0 else 1
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view):]
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, old)


if __name__ == "__main__":
    sys.exit(main())
