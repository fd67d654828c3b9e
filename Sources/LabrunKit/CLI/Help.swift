/// Usage texts: one per command, printed by `--help` (stdout, exit 0) and after usage errors.
public enum Help {
    public static let version = "labrun 0.1.0"

    public static let main = """
    labrun: run and snapshot the QEMU VM of a kernel-development lab

    usage: labrun [--lab DIR] COMMAND [ARGS]

    commands:
      boot                   start the VM, its serial console on this terminal (Ctrl-a h: keys)
      attach                 show the running VM's console in this terminal (Ctrl-a d leaves)
      log                    the console log: what the guest printed, across boots (-f follows)
      snapshot create NAME   save the VM (running: RAM + devices + disk; stopped: disk)
      snapshot restore NAME  go back to a snapshot (running: at once; stopped: at next boot)
      snapshot list          list snapshots: space, parent, description (--tree, --json)
      snapshot delete NAME   delete a snapshot
      snapshot rename OLD NEW, snapshot describe NAME TEXT
      reset                  throw the runtime layer away and start again from the golden image
      info                   image chain, sizes and snapshots (--json)
      check                  check the runtime image for leaks or corruption (--repair)
      status                 is the VM running? QEMU pid, run directory (--json)
      stop                   shut the running VM down
      suspend                save the whole running VM to disk and end it; boot resumes it
      init DIR               create a new lab in DIR from this one's images
      export FILE            the lab's disk (now, or a --snapshot) as one standalone qcow2 file
      import FILE DIR        a new lab in DIR from a file made by export
      exec -- CMD [ARGS]     run a command in the running guest (through the guest agent)
      run -- CMD [ARGS]      boot, run CMD in the guest, stop; exit with its status (git bisect run)
      module build|load|unload DIR   an out-of-tree kernel module for the lab's kernel
      gdb [-- GDB ARGS]      gdb on the running VM (boot --debug), with the kernel's and modules' names
      completion SHELL       a completion script for bash, zsh or fish (snapshot names included)
      wait-ready             wait until the running guest has booted (for scripts)

    The same commands work whether the VM runs or not: labrun finds a running supervisor
    and acts through it, otherwise it works on the images directly with qemu-img.

    global options:
      --lab DIR              the lab directory (default: LABRUN_LAB, else the nearest lab
                             upwards from here, else the current directory)
      --help, -h             help for labrun or for a command
      --version              print the version
    """

    public static let boot = """
    usage: labrun boot [OPTIONS]

    Starts QEMU with the lab's runtime image and shows the guest's serial console here.
    Press Ctrl-a h in the console for labrun's keys; Ctrl-a x quits.

    options:
      --mem SIZE             guest memory (MiB, or 512M, 1G); default lab.conf mem or 256
      --cpus N               virtual CPUs; default lab.conf cpus or 1
      --accel auto|kvm|tcg   accelerator (auto: kvm when /dev/kvm is usable); LABRUN_ACCEL overrides
      --qemu PATH            the QEMU binary (or LABRUN_QEMU, or lab.conf qemu)
      --kernel PATH          boot this kernel (a bzImage or vmlinux from a build tree) instead
                             of the lab's (lab.conf kernel)
      --modules DIR          that kernel's modules: DIR of `make modules_install
                             INSTALL_MOD_PATH=DIR` (lab.conf modules for lab.conf's kernel).
                             Without it labrun looks in the tree (INSTALL_MOD_PATH=., tar-install/),
                             in ROOT for ROOT/boot/vmlinuz-*, and in /lib/modules/RELEASE
      --shared [DIR]         export DIR (default LAB/shared) to the guest, mounted at /mnt
      --debug                gdb stub on 127.0.0.1 (port: --gdb-port, lab.conf gdb_port, 1234)
      --gdb-port PORT        gdb stub port (implies --debug)
      --wait-gdb             start with the CPUs stopped until gdb continues (implies --debug)
      --dry-run              print the QEMU command line and exit
      --detach               run the VM in the background (no console); returns once the
                             guest is up: then `labrun exec`, `labrun snapshot …`, `labrun stop`
      --cold                 boot afresh: a suspended VM is discarded (asks first; --yes does
                             not), and a fresh runtime layer boots instead of resuming the boot
                             checkpoint (and keeps a new one)

    A fresh runtime layer (a new lab, or just after `labrun reset`) resumes the golden image's
    boot checkpoint instead of booting: the shell answers in a fraction of a second. The first
    fresh boot of a kernel, append line, image, VM shape or QEMU keeps that checkpoint once
    the guest is up (in .labrun-checkpoints/ beside the golden image; lab.conf checkpoints =
    DIR or off). A changed one boots cold and says why; a damaged one is moved aside.

    Another kernel's modules: its virtio/ext4 ones load from the initrd (labrun adds them to
    the lab's), and all of them are on a read-only disk mounted on /lib/modules/RELEASE, so
    modprobe works (both made once, in LAB/.labrun-kernels). A kernel that cannot boot the lab
    (no virtio-blk, no ext4) ends the boot with the initrd's reason and status 125.
    """

    public static let snapshot = """
    usage: labrun snapshot create NAME [-m TEXT] [--force] [--disk-only] [--json]
           labrun snapshot restore NAME [--json]
           labrun snapshot list [--tree | --json]
           labrun snapshot delete NAME [--json]
           labrun snapshot rename OLD NEW
           labrun snapshot describe NAME [TEXT]

    Names: letters, digits and . _ - + : @ , = ; not all digits (QEMU confuses those with
    snapshot IDs), no spaces or quotes, at most 255 bytes. create refuses an existing name
    unless --force. On a running VM a snapshot holds RAM, devices and disk; on a stopped one,
    the disk. Restoring a snapshot with VM state while stopped resumes it at the next boot.
    With the shared folder mounted, labrun unmounts it in the guest around the snapshot (the
    guest agent does it) and mounts it again after; --disk-only saves the disk alone, live.
    --json prints the result as one JSON object (op, name, live, seconds, snapshot, message).
    If QEMU stops answering (stopped, stuck, or no progress for 30 s) the command says so in
    one line and exits 1; a long snapshot shows its progress every 2 s.

    Each snapshot keeps a story (LAB/.labrun-history.json; the qcow2 table stays the truth):
    a description (-m/--message TEXT, or `describe`; Ctrl-a s asks after the name; at most
    4 KiB of text, newlines kept, no control characters), its parent (the snapshot the VM came
    from when it was taken) and which snapshot the VM is on now ("*" in the list). list shows
    the VM state, what deleting each snapshot alone would free (FREES, from the qcow2
    refcounts), the parent and the description; --tree draws the family under the golden
    image; --json has every field. Snapshots made by qemu-img or the monitor have no parent
    and no description. Deleting a snapshot gives its children its parent. rename works
    stopped (the table is rewritten in place of qemu-img, which cannot) and running (the VM
    is suspended to a file for about half a second around it). describe with no TEXT clears.
    Colour at a terminal (names, the current snapshot, errors); none with NO_COLOR or a pipe.
    """

    public static let reset = """
    usage: labrun reset [--yes] [--force] [--undo]

    Deletes the runtime layer (debian-runtime.qcow2, with its snapshots) and creates a fresh
    one on the golden image. The old one is kept as one undo step (debian-runtime.qcow2.undo),
    replaced at the next reset; a suspended VM goes with it. While the VM runs it is reset in
    place: its console stays open and the new layer resumes the boot checkpoint (Ctrl-a r in
    the console does the same).
      --yes      do not ask (asking happens only on a terminal)
      --force    while the VM runs: stop it and reset offline instead of in place
      --undo     put the previous runtime layer back (the current one becomes the undo step);
                 while running, in place: cold-booted, or resumed if it had been suspended
    """

    public static let info = """
    usage: labrun info [--json]

    The runtime image's backing chain (runtime → golden → base) with formats and sizes,
    and its snapshots.
    """

    public static let check = """
    usage: labrun check [--repair]

    Runs qemu-img check on the runtime image and explains the result. --repair reclaims leaked
    clusters. The VM must be stopped (a check of a running image gives false reports).
    """

    public static let status = """
    usage: labrun status [--json]

    Whether this lab's VM is running, with QEMU's pid and the run directory. Exit 0 either way.
    """

    public static let stop = """
    usage: labrun stop

    Shuts the running VM down gracefully (QMP quit) and waits for it to end.
    """

    public static let suspend = """
    usage: labrun suspend

    Saves the running VM's whole state (RAM, devices; the disk stays as it is) and ends QEMU.
    The next `labrun boot` resumes it exactly there: running programs, shell variables, an
    open editor; the guest's clock is set to the host's. It is not a snapshot (`snapshot list`
    does not show it); `status` and `info` say since when the lab is suspended. Ctrl-a z in
    the console does the same. `labrun boot --cold` discards it.
    """

    public static let exec = """
    usage: labrun exec [--timeout SECONDS] -- COMMAND [ARGS...]

    Runs COMMAND in the running guest through the guest agent (a virtio-serial channel, not
    your console), prints its output on stdout and stderr, and exits with its exit status.
    --timeout kills it after SECONDS (exit 137). If the guest kernel panics meanwhile (or has
    panicked), it returns at once with exit status 125 and one line naming the panic.
    """

    public static let waitReady = """
    usage: labrun wait-ready [--timeout SECONDS]

    Waits until a VM is running (a `labrun boot` started in the background counts) and its
    guest has booted (its agent answers); 120 s at most by default.
    Exit 0 when it is up; 1 when no VM started or the guest did not come up in time; 125 when
    the guest kernel panicked during boot (the line names the panic and the last console line).
    """

    public static let attach = """
    usage: labrun attach [--read-only]

    Shows the running VM's serial console in this terminal, starting with its recent screen
    (about the last 100 lines). Any number of terminals can be attached at once: all see the
    output and all can type (as `screen -x`); the window size the guest uses is that of the
    terminal that typed last. Ctrl-a d detaches this terminal only, and so does closing it
    (or a dropped ssh link): the VM runs on. Ctrl-a x shuts the VM down for everyone.
      --read-only    only watch: keys are not sent to the guest
    """

    public static let log = """
    usage: labrun log [-f] [-n N] [--boot N] [--since TIME] [--timestamps]
           labrun log --reports | --report N

    The console log: every line the guest printed on its console, across boots, with labrun's
    own notices marked "[labrun]". It lives in LAB/console.log (rotated at 16 MiB into
    console.log.1 … .3; lab.conf log_size, log_files, log = off).
      -f, --follow     keep printing what comes (Ctrl-C ends it)
      -n N             only the last N lines
      --boot N         one boot: 0 the latest, -1 the one before, 1 the first in the log
      --since TIME     from TIME on: "2026-12-02 10:30", "10:30", "10:30:15", or "-10m", "-2h", "-30s"
      --timestamps     each line with the host time and the time since QEMU started: [+1.234]
      --reports        the kernel crash reports seen (panics, oopses, BUGs, WARNINGs, hung
                       tasks, lockups), numbered, with their times and titles
      --report N       report N in full
    """

    public static let run = """
    usage: labrun run [--kernel PATH [--modules DIR]] [--reset] [--shared [DIR]] [--timeout S] [--keep] -- COMMAND [ARGS...]

    A test runner: boots the lab in the background (resuming the boot checkpoint when the
    runtime layer is fresh: with --reset it always is), with the shared folder at /mnt, runs
    COMMAND in the guest with its output here, stops the VM (unless --keep), and exits with
    COMMAND's status; 125 when the guest kernel panics (during boot or while COMMAND runs) or
    the kernel cannot boot the lab (git bisect run skips that commit).
      git bisect run labrun run --reset --kernel arch/x86/boot/bzImage -- /mnt/test.sh
    Without `--`, `labrun run` is `labrun boot`.
      --kernel PATH  boot this kernel instead of the lab's
      --modules DIR  its modules (INSTALL_MOD_PATH of modules_install; see `labrun boot --help`)
      --reset        start from a fresh runtime layer (the old one becomes the undo step)
      --shared DIR   share DIR at /mnt instead of the lab's shared folder
      --timeout S    kill COMMAND after S seconds (exit 137)
      --keep         leave the VM running afterwards
    """

    public static let module = """
    usage: labrun module build DIR
           labrun module load DIR|FILE.ko [PARAM=VALUE...]
           labrun module unload DIR|NAME

    build compiles the out-of-tree module in DIR (a Kbuild or Makefile, as the kernel's
    Documentation/kbuild/modules.rst describes) against the kernel the lab boots: Debian's
    linux-headers-RELEASE for the built guest (installed when missing, about 13 MB, once), or
    the kernel tree the lab's kernel comes from. Unknown symbols stay warnings, so the kernel
    says why at load time.
    load sends the module to the running guest through its agent, insmods it with the
    parameters, and prints the kernel messages it produced; if it does not load, it exits
    non-zero with the kernel's reason. unload rmmods it the same way.
    `make module M=DIR`, `make insmod M=DIR` and `make rmmod M=DIR` do the same.
    """

    public static let gdb = """
    usage: labrun gdb [-- GDB ARGS...]

    Starts gdb on the running VM's gdb stub (boot it with --debug: `make run` does), with
    names: every text symbol of the running kernel and of its loaded modules, read from the
    guest's /proc/kallsyms at the addresses the kernel really has (KASLR does not matter), so
    `bt` names functions and `break FUNCTION` works. A kernel booted from a build tree also
    gets the tree's vmlinux-gdb.py (lx-symbols, lx-dmesg …). Ctrl-C in gdb stops the guest.
      labrun gdb -- -batch -ex bt
    `make debug` runs it.
    """

    public static let completion = """
    usage: labrun completion bash|zsh|fish

    Prints a completion script: commands, their options, and the snapshot names of the lab in
    question (running or not; read from the image directly, in milliseconds).
      source <(labrun completion bash)        # or: labrun completion fish | source
    `make install` puts them where bash-completion, zsh and fish look.
    """

    public static let initLab = """
    usage: labrun init DIR [--arch x86_64|aarch64] [--force]

    Creates a new lab in DIR: its own runtime layer on this lab's golden image (the read-only
    lower layers are referenced, not copied), a lab.conf naming the kernel, and shared/.
    --arch aarch64 from an x86_64 lab uses the tiny AArch64 guest in guest-aarch64/ (built
    there by guest/build-tiny.sh when missing).
    """

    public static let export = """
    usage: labrun export FILE [--snapshot NAME] [--compress] [--force]

    Writes the lab's disk as one standalone qcow2 file (no backing file: the runtime layer
    flattened with the golden and base layers below it), to hand on or to keep. Without
    --snapshot it is the disk as it is now; with --snapshot NAME, as it was in that snapshot.
    `labrun import FILE DIR` makes a lab of it.

    Stopped VM: qemu-img copies the images. Running VM: a QEMU backup job copies the disk in
    the background while the guest runs on (the copy is the disk at the moment the export
    started); a snapshot is read beside the running VM. Only what is on the disk is
    exported: run `sync` in the guest first for files written just before.

    The copy is written as FILE.PID.part, checked with `qemu-img check` (and compared with the
    runtime layer when the VM is stopped), and renamed to FILE only at the end: a failure,
    Ctrl-C or SIGTERM leaves no FILE (and removes the .part file). Progress goes to stderr.

    options:
      --snapshot NAME        export the disk of internal snapshot NAME (`labrun snapshot list`)
      --compress             compress the data (smaller file, slower to write)
      --force                replace an existing FILE
    """

    public static let importLab = """
    usage: labrun import FILE DIR [--force]

    Makes a new lab in DIR from FILE, a standalone qcow2 made by `labrun export` (e.g. a
    student's state handed to a teacher). The file is copied (and checked) as the new lab's
    golden image, with a fresh runtime layer on it: the lab boots where the export left off,
    and `labrun reset` comes back to that. The kernel, initrd, memory and CPUs are this lab's
    (--lab), as with `labrun init`. A file that is not qcow2 or has a backing file is refused.
    --force replaces a lab already in DIR.
    """

    public static func text(for command: String) -> String {
        switch command {
        case "boot": boot
        case "run": run
        case "module": module
        case "gdb": gdb
        case "completion": completion
        case "snapshot": snapshot
        case "reset": reset
        case "info": info
        case "check": check
        case "status": status
        case "stop": stop
        case "suspend": suspend
        case "init": initLab
        case "exec": exec
        case "wait-ready": waitReady
        case "attach": attach
        case "log": log
        case "export": export
        case "import": importLab
        default: main
        }
    }
}

extension Help {
    /// The manual page (troff), made from the same texts as `--help`: `labrun __man`.
    public static var manPage: String {
        func escape(_ s: String) -> String {
            s.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                var l = String(line).replacingAll("\\", with: "\\e")
                if l.hasPrefix(".") || l.hasPrefix("'") { l = "\\&" + l }
                return l
            }.joined(separator: "\n")
        }
        let commands = ["boot", "attach", "log", "snapshot", "reset", "info", "check", "status", "stop", "suspend",
                        "init", "exec", "run", "wait-ready", "module", "gdb", "completion"]
            + ["export", "import"]
        var out = ".TH LABRUN 1 \"2026\" \"\(version)\" \"User Commands\"\n"
        out += ".SH NAME\nlabrun \\- run and snapshot the QEMU VM of a kernel-development lab\n"
        out += ".SH SYNOPSIS\n.B labrun\n[\\-\\-lab DIR] COMMAND [ARGS]\n"
        out += ".SH DESCRIPTION\n.nf\n" + escape(main) + "\n.fi\n"
        out += ".SH COMMANDS\n"
        for c in commands {
            out += ".SS \(c)\n.nf\n" + escape(text(for: c)) + "\n.fi\n"
        }
        out += ".SH EXIT STATUS\n0 on success, 1 on an error (one line on stderr), 64 on a usage error; `exec` and `run` exit with the command's status, and 125 when the guest kernel panicked.\n"
        out += ".SH FILES\n.nf\nLAB/lab.conf, LAB/console.log, LAB/.labrun/ (sockets), .labrun-checkpoints/ beside the golden image\n.fi\n"
        return out
    }
}
