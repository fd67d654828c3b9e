# shellcheck shell=bash
# debian-mirror.sh — sourced by the guest builders (bash): where apt on this host gets Debian from.
#
# debian_mirrors sets
#   DEBIAN_MIRROR           the archive URI apt uses for bookworm (e.g. http://deb.debian.org/debian)
#   DEBIAN_SECURITY_MIRROR  the URI it uses for bookworm-security
# read from /etc/apt/sources.list and /etc/apt/sources.list.d/*.list|*.sources (one-line and deb822
# formats; disabled entries and deb-src are skipped). The environment wins:
# LABRUN_DEBIAN_MIRROR, LABRUN_DEBIAN_SECURITY_MIRROR. With no security entry, the archive URI's
# ".../debian" becomes ".../debian-security"; with no entry at all, deb.debian.org is used.
# The host's apt configuration is only read, never changed.

# Every "URI SUITE" pair of the enabled "deb" entries, one per line, in apt's reading order.
apt_source_pairs() {
    local f files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    for f in "${files[@]}"; do
        case $f in
        *.sources)
            # deb822: paragraphs of "Field: value" lines; values may continue on indented lines.
            awk '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no")
                        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
                    types = ""; enabled = ""; nu = 0; ns = 0; field = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ {
                    n = split($0, tmp)
                    for (k = 1; k <= n; k++) { if (field == "uris") u[++nu] = tmp[k]; else if (field == "suites") s[++ns] = tmp[k] }
                    next
                }
                {
                    field = tolower(substr($0, 1, index($0, ":") - 1)); v = substr($0, index($0, ":") + 1)
                    if (field == "types") types = v
                    else if (field == "enabled") { enabled = v; gsub(/[ \t]/, "", enabled) }
                    else if (field == "uris") nu = split(v, u)
                    else if (field == "suites") ns = split(v, s)
                }
                END { flush() }' "$f" ;;
        *)
            # One-line: deb [options] URI SUITE COMPONENT...
            sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }' ;;
        esac
    done
}

debian_mirrors() {
    local pairs uri suite
    pairs=$(apt_source_pairs 2>/dev/null || :)
    DEBIAN_MIRROR=${LABRUN_DEBIAN_MIRROR:-}
    DEBIAN_SECURITY_MIRROR=${LABRUN_DEBIAN_SECURITY_MIRROR:-}
    while read -r uri suite; do
        [[ -n $uri ]] || continue
        uri=${uri%/}
        case $suite in
            bookworm | bookworm-updates) [[ -n $DEBIAN_MIRROR ]] || DEBIAN_MIRROR=$uri ;;
            bookworm-security | bookworm/updates) [[ -n $DEBIAN_SECURITY_MIRROR ]] || DEBIAN_SECURITY_MIRROR=$uri ;;
        esac
    done <<<"$pairs"
    DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    if [[ -z $DEBIAN_SECURITY_MIRROR ]]; then
        case $DEBIAN_MIRROR in
            */debian) DEBIAN_SECURITY_MIRROR=$DEBIAN_MIRROR-security ;;
            *) DEBIAN_SECURITY_MIRROR=http://deb.debian.org/debian-security ;;
        esac
    fi
}
