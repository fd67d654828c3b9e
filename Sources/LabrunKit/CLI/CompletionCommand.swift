/// `labrun completion bash|zsh|fish` (issue 15 §3): a completion script for the shell. The
/// scripts ask `labrun __complete WHAT` for what depends on the lab: the snapshot names are
/// read straight from the runtime layer's qcow2 snapshot table (no qemu-img, no supervisor:
/// a few milliseconds, whether the VM runs or not).
extension LabrunCLI {
    /// Commands, and the options each takes (from the same parser specs the commands use).
    static let completionWords: [(command: String, options: [String])] = [
        ("boot", ["--mem", "--cpus", "--accel", "--shared", "--debug", "--gdb-port", "--wait-gdb", "--kernel", "--modules", "--qemu", "--dry-run", "--detach", "--cold", "--yes"]),
        ("attach", ["--read-only"]),
        ("log", ["-f", "--follow", "-n", "--boot", "--since", "--timestamps", "--reports", "--report"]),
        ("snapshot", ["create", "restore", "list", "delete", "rename", "describe"]),
        ("reset", ["--yes", "--force", "--undo"]),
        ("info", ["--json"]), ("check", ["--repair"]), ("status", ["--json"]), ("stop", []),
        ("suspend", []), ("init", ["--arch", "--force"]), ("exec", ["--timeout"]), ("wait-ready", ["--timeout"]),
        ("run", ["--kernel", "--modules", "--reset", "--shared", "--timeout", "--keep"]),
        ("module", ["build", "load", "unload"]), ("gdb", []), ("completion", ["bash", "zsh", "fish"]), ("help", []),
        ("export", ["--snapshot", "--compress", "--force"]), ("import", ["--force"]),
    ]

    static func completion(_ args: [String], _ context: Context) throws(LabrunError) -> Int32 {
        let a = try ArgumentSpec(positionals: 1...1).parse(args, command: "completion")
        switch a.positionals[0] {
        case "bash": say(Completion.bash)
        case "zsh": say(Completion.zsh)
        case "fish": say(Completion.fish)
        default: throw .usage("completion: expected bash, zsh or fish")
        }
        return 0
    }

    /// `labrun __complete commands|options CMD|snapshots`: one word per line, never an error.
    static func complete(_ args: [String], _ context: Context) -> Int32 {
        switch args.first {
        case "commands":
            for (c, _) in completionWords { say(c) }
        case "options":
            let cmd = args.dropFirst().first ?? ""
            for o in completionWords.first(where: { $0.command == cmd })?.options ?? [] { say(o) }
        case "snapshots":
            guard let lab = try? Lab.locate(explicit: context.labDirectory),
                  let list = Qcow2SnapshotTable.read(lab.runtimePath) else { return 0 }
            for s in list { say(s.name) }
        default: break
        }
        return 0
    }
}

enum Completion {
    static let bash = #"""
    # bash completion for labrun: `source <(labrun completion bash)`, or installed by `make install`.
    _labrun() {
        local cur prev words cword
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD-1]}
        local lab=() i cmd="" sub=""
        for ((i = 1; i < COMP_CWORD; i++)); do
            case ${COMP_WORDS[i]} in
                --lab) lab=(--lab "${COMP_WORDS[i+1]}"); ((i++)) ;;
                -*) ;;
                *) if [[ -z $cmd ]]; then cmd=${COMP_WORDS[i]}; elif [[ -z $sub ]]; then sub=${COMP_WORDS[i]}; fi ;;
            esac
        done
        if [[ -z $cmd ]]; then
            COMPREPLY=($(compgen -W "$(labrun __complete commands) --lab --help --version" -- "$cur"))
            return
        fi
        case $prev in
            --lab|--shared|--kernel|--modules|--qemu) COMPREPLY=($(compgen -f -- "$cur")); return ;;
            --accel) COMPREPLY=($(compgen -W "auto kvm tcg" -- "$cur")); return ;;
            --arch) COMPREPLY=($(compgen -W "x86_64 aarch64" -- "$cur")); return ;;
            --snapshot) COMPREPLY=($(compgen -W "$(labrun "${lab[@]}" __complete snapshots)" -- "$cur")); return ;;
        esac
        case $cmd in
            snapshot)
                if [[ -z $sub ]]; then
                    COMPREPLY=($(compgen -W "create restore list delete rename describe" -- "$cur"))
                elif [[ $sub =~ ^(restore|delete|create|rename|describe)$ ]] && [[ $cur != -* ]]; then
                    COMPREPLY=($(compgen -W "$(labrun "${lab[@]}" __complete snapshots)" -- "$cur"))
                elif [[ $sub == list ]]; then
                    COMPREPLY=($(compgen -W "--json --tree" -- "$cur"))
                else
                    COMPREPLY=($(compgen -W "--json --force --disk-only --message" -- "$cur"))
                fi ;;
            export|import)
                if [[ $cur == -* ]]; then
                    COMPREPLY=($(compgen -W "$(labrun __complete options "$cmd")" -- "$cur"))
                else
                    COMPREPLY=($(compgen -f -- "$cur"))
                fi ;;
            module|init|attach|log|boot|run|reset|info|check|status|stop|suspend|exec|wait-ready|gdb|completion)
                if [[ $cmd == module && -n $sub ]] || [[ $cmd == init && $cur != -* ]]; then
                    COMPREPLY=($(compgen -d -- "$cur"))
                else
                    COMPREPLY=($(compgen -W "$(labrun __complete options "$cmd")" -- "$cur"))
                fi ;;
        esac
    }
    complete -F _labrun labrun
    """#

    static let zsh = #"""
    #compdef labrun
    # zsh completion for labrun: `source <(labrun completion zsh)`, or installed by `make install`.
    _labrun() {
        local -a words_before lab
        local cmd="" sub="" i
        for ((i = 2; i < CURRENT; i++)); do
            case ${words[i]} in
                --lab) lab=(--lab ${words[i+1]}); ((i++)) ;;
                -*) ;;
                *) if [[ -z $cmd ]]; then cmd=${words[i]}; elif [[ -z $sub ]]; then sub=${words[i]}; fi ;;
            esac
        done
        if [[ -z $cmd ]]; then
            compadd -- ${(f)"$(labrun __complete commands)"} --lab --help --version
        elif [[ $cmd == snapshot && -z $sub ]]; then
            compadd -- create restore list delete rename describe
        elif [[ $cmd == snapshot && ${words[CURRENT]} != -* ]]; then
            compadd -- ${(f)"$(labrun $lab __complete snapshots)"}
        elif [[ ( $cmd == module && -n $sub ) || $cmd == init ]]; then
            _files -/
        elif [[ $cmd == export && ${words[CURRENT-1]} == --snapshot ]]; then
            compadd -- ${(f)"$(labrun $lab __complete snapshots)"}
        elif [[ ( $cmd == export || $cmd == import ) && ${words[CURRENT]} != -* ]]; then
            _files
        else
            compadd -- ${(f)"$(labrun __complete options $cmd)"}
        fi
    }
    compdef _labrun labrun
    """#

    static let fish = #"""
    # fish completion for labrun: `labrun completion fish | source`, or installed by `make install`.
    function __labrun_needs_command
        set -l words (commandline -opc)
        for w in $words[2..-1]
            switch $w
                case '-*'
                case '*'
                    return 1
            end
        end
        return 0
    end
    function __labrun_command
        set -l words (commandline -opc)
        for w in $words[2..-1]
            switch $w
                case '-*'
                case '*'
                    echo $w
                    return
            end
        end
    end
    complete -c labrun -f
    complete -c labrun -n __labrun_needs_command -a '(labrun __complete commands)'
    complete -c labrun -n 'not __labrun_needs_command' -a '(labrun __complete options (__labrun_command))'
    complete -c labrun -n '__fish_seen_subcommand_from restore delete create rename describe' -a '(labrun __complete snapshots)'
    complete -c labrun -n '__fish_seen_subcommand_from export; and __fish_prev_arg_in --snapshot' -a '(labrun __complete snapshots)'
    complete -c labrun -n '__fish_seen_subcommand_from export import' -F
    """#
}
