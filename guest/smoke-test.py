#!/usr/bin/env python3
"""Smoke test for the tiny guest made by build-tiny.sh.

Usage: guest/smoke-test.py [--boots N] LABDIR   (--boots: only time N boots, min/median)

Boots LABDIR's tiny guest with plain QEMU under TCG (1 vCPU, 256 MiB) on a throwaway runtime
overlay in a temp dir (never touching LABDIR's images), and checks: boot to the ready line and to the
prompt (timed), a command's answer, Ctrl-C in the shell, mount-shared without and with a 9p share,
a file written in the guest surviving a poweroff/relaunch and an in-guest reboot, and that `poweroff`
makes QEMU exit. The serial console is driven through pipes (not a pty), so the ^C byte reaches the
guest instead of being turned into SIGINT for QEMU by the host's tty driver.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, "scripts"))
import labpy  # noqa: E402  (the console and QMP helpers bench/labbench.py uses too)

READY = b"labrun-guest: ready"
PROMPT = b"root@lab:~# "


class Guest(labpy.Session):
    """Plain QEMU with the serial console on pipes (labpy.Session with pty=False)."""

    def __init__(self, lab, overlay, share=None, qmp=None):
        gb = os.path.join(lab, "guest-build")
        cmd = [
            "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-accel", "tcg",
            "-m", "256", "-smp", "1", "-display", "none",
            "-kernel", os.path.join(gb, "vmlinux"), "-initrd", os.path.join(gb, "initrd.img"),
            "-append", "console=ttyS0 quiet",
            "-blockdev", f"driver=file,filename={overlay},node-name=rt-file",
            "-blockdev", "driver=qcow2,file=rt-file,node-name=rt",
            "-device", "virtio-blk-pci,drive=rt",
            "-serial", "stdio", "-monitor", "none",
        ]
        if qmp:
            cmd += ["-qmp", f"unix:{qmp},server=on,wait=off"]
        self.qmp_path = qmp
        if share:
            cmd += ["-fsdev", f"local,id=fs0,path={share},security_model=mapped-xattr",
                    "-device", "virtio-9p-pci,fsdev=fs0,mount_tag=hostshare"]
        super().__init__(cmd, pty=False, name="qemu", kill_grace=0)

    def at(self, pattern, timeout=20.0):
        """expect(): seconds since launch when `pattern` arrived."""
        return self.since_start(self.expect(pattern, timeout))

    def run(self, command, timeout=20.0):
        """Run a shell command, return its output (between the echoed command line and the prompt)."""
        self.send(command + "\n")
        start = self.cursor
        self.expect(PROMPT, timeout)
        end = self.cursor - len(PROMPT)
        lines = bytes(self.transcript[start:end]).decode(errors="replace").replace("\r", "").split("\n")
        # Drop the shell's echo of the command (ash wraps it at 80 columns on the serial line).
        echoed = ""
        for i, line in enumerate(lines):
            echoed += line
            if echoed.endswith(command):
                return "\n".join(lines[i + 1:])
        return "\n".join(lines)

    def qmp(self, command):
        """Run one QMP command on a fresh connection: its return value (an error raises labpy.Error)."""
        q = labpy.connect_qmp(self.qmp_path)
        try:
            return q.cmd(command)
        finally:
            q.close()

    def powered_off(self, timeout=20.0):
        """Waits for QEMU to exit (killed if it does not): seconds waited."""
        t = time.monotonic()
        if self.wait_exit(timeout) is None:
            self.kill()
            raise labpy.Error(f"QEMU did not exit within {timeout} s; recent output:\n{self.tail()}")
        return time.monotonic() - t


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        raise SystemExit(1)


def time_boots(lab, tmp, n):
    """Boot n times (fresh overlay each), report launch->ready and launch->prompt."""
    ready, prompt = [], []
    for _ in range(n):
        overlay = os.path.join(tmp, "bench.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        os.path.join(lab, "debian-rootfs.qcow2"), overlay], check=True)
        g = Guest(lab, overlay)
        try:
            ready.append(g.at(READY, 30))
            prompt.append(g.at(PROMPT, 10))
            g.send("poweroff -f\n")
            g.powered_off(10)
        finally:
            g.close()
        print(f"boot: ready {ready[-1]:.2f} s, prompt {prompt[-1]:.2f} s", flush=True)
    med = lambda v: sorted(v)[len(v) // 2]
    print(f"{n} boots: ready min {min(ready):.2f} / median {med(ready):.2f} s; "
          f"prompt min {min(prompt):.2f} / median {med(prompt):.2f} s")


def main():
    args = sys.argv[1:]
    boots = 0
    if len(args) == 3 and args[0] == "--boots":
        boots = int(args[1]); args = args[2:]
    if len(args) != 1:
        sys.exit(__doc__)
    lab = os.path.abspath(args[0])
    kver = open(os.path.join(lab, "guest-build", "kernel-version")).read().strip()
    tmp = tempfile.mkdtemp(prefix="labrun-smoke-")
    guests = []
    if boots:
        try:
            time_boots(lab, tmp, boots)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        overlay = os.path.join(tmp, "rt.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        os.path.join(lab, "debian-rootfs.qcow2"), overlay], check=True)
        share = os.path.join(tmp, "share")
        os.mkdir(share)
        with open(os.path.join(share, "from-host.txt"), "w") as f:
            f.write("hello from host\n")

        # Boot 1: no share.
        g = Guest(lab, overlay); guests.append(g)
        t_ready = g.at(READY, 30)
        t_prompt = g.at(PROMPT, 10)
        print(f"boot 1: ready after {t_ready:.2f} s, prompt after {t_prompt:.2f} s")
        out = g.run("uname -r; echo $((6*7))")
        check(out.split() == [kver, "42"], f"uname -r; echo $((6*7)) -> {out.split()}")
        g.send("sleep 100\n")
        g.expect("sleep 100", 20)
        time.sleep(0.5)
        t = time.monotonic()
        g.send(b"\x03")
        g.expect(PROMPT, 3)
        dt = time.monotonic() - t
        out = g.run("echo rc=$?")
        check("rc=130" in out, f"Ctrl-C interrupts sleep 100 ({dt:.2f} s, {out.strip()})")
        g.send("sleep 100\n")
        g.expect("sleep 100", 20)
        time.sleep(0.5)
        g.send(b"\x1a")
        g.expect(PROMPT, 3)
        out = g.run("jobs; kill %1; wait; echo done")
        check("Stopped" in out and "done" in out, "Ctrl-Z stops a job (job control)")
        out = g.run("mount-shared; echo rc=$?")
        check("no shared folder" in out and "rc=1" in out, "mount-shared without a share: " + out.strip().splitlines()[0])
        g.run("echo hi > /root/x; sync")
        t = time.monotonic()
        g.send("poweroff\n")
        g.powered_off(20)
        check(g.proc.returncode == 0, f"poweroff exits QEMU (rc {g.proc.returncode}, {time.monotonic() - t:.2f} s)")

        # Boot 2: with share; the file from boot 1 must still be there; then an in-guest reboot.
        g = Guest(lab, overlay, share, qmp=os.path.join(tmp, "qmp.sock")); guests.append(g)
        t_ready2 = g.at(READY, 30)
        t_prompt2 = g.at(PROMPT, 10)
        print(f"boot 2: ready after {t_ready2:.2f} s, prompt after {t_prompt2:.2f} s")
        out = g.run("cat /root/x")
        check(out.strip() == "hi", "file written before poweroff survives a relaunch")
        out = g.run("mount-shared && cat /mnt/from-host.txt && echo guest > /mnt/from-guest.txt; echo rc=$?")
        check("hello from host" in out and "rc=0" in out, "mount-shared with a share: host file readable")
        guest_file = os.path.join(share, "from-guest.txt")
        check(os.path.exists(guest_file) and open(guest_file).read() == "guest\n", "guest-written file visible on host")
        g.run("umount /mnt")
        g.run("echo again >> /root/x")
        t = time.monotonic()
        g.send("reboot\n")
        g.expect(READY, 40)
        g.expect(PROMPT, 10)
        print(f"in-guest reboot: back at the prompt after {time.monotonic() - t:.2f} s")
        out = g.run("cat /root/x")
        check(out.split() == ["hi", "again"], "file survives an in-guest reboot")
        out = g.run("tty; echo $PS1; echo TERM=$TERM; id -un; hostname; cut -d' ' -f2 /proc/mounts | tr '\\n' ' '")
        print("   ", out.strip().replace("\n", "\n    "))
        time.sleep(1)  # let the background acpid start
        t = time.monotonic()
        try:
            g.qmp("system_powerdown")
            accepted = True
        except labpy.Error as e:
            print(f"     {e}", flush=True)
            accepted = False
        if accepted:
            g.powered_off(20)
        check(accepted and g.proc.returncode == 0,
              f"QMP system_powerdown (ACPI power button) powers the guest off ({time.monotonic() - t:.2f} s)")
        subprocess.run(["qemu-img", "check", "-q", overlay], check=True)
        print(f"summary: ready {t_ready:.2f}/{t_ready2:.2f} s, prompt {t_prompt:.2f}/{t_prompt2:.2f} s")
    finally:
        for g in guests:
            g.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except labpy.Error as e:  # no expected output in time, the console closed, or QEMU hung
        print(f"FAIL {e}", flush=True)
        sys.exit(1)
