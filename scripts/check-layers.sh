#!/bin/sh
# Each layer of src/ includes only its own headers and those of the layers
# below it (docs/layout.md). The pure layers' ban on libuv and Lua is also
# held by the compiler (the Makefile's poisoned headers); this check adds
# the order between hearsay's own folders.
set -eu
cd "$(dirname "$0")/.."

allowed() {
    case "$1" in
    base) echo "base" ;;
    codec) echo "base codec" ;;
    core) echo "base codec core io/io.h" ;;
    io) echo "base codec core io" ;;
    lua) echo "base codec core io lua agent/join.h agent/setup.h" ;;
    agent) echo "base codec core io lua agent" ;;
    cli) echo "base codec core cli agent/control.h" ;;
    *) echo "" ;;
    esac
}

bad=0
for dir in src/*/; do
    layer=$(basename "$dir")
    ok=$(allowed "$layer")
    [ -n "$ok" ] || { echo "check-layers: src/$layer is not a known layer"; bad=1; continue; }
    for f in "$dir"*.c "$dir"*.h; do
        [ -e "$f" ] || continue
        grep -n '^#include "' "$f" | while IFS= read -r line; do
            inc=$(printf '%s\n' "$line" | sed 's/.*#include "\([^"]*\)".*/\1/')
            top=${inc%%/*}
            pass=0
            for a in $ok; do
                if [ "$a" = "$top" ] || [ "$a" = "$inc" ]; then pass=1; fi
            done
            # A header named *_int.h is private to its own folder.
            case "$inc" in *_int.h) [ "$top" = "$layer" ] || pass=0 ;; esac
            if [ $pass = 0 ]; then
                echo "$f:${line%%:*}: $layer may not include \"$inc\""
                echo x
            fi
        done
    done
done | { out=$(cat); if printf '%s' "$out" | grep -q '^x$'; then
    printf '%s\n' "$out" | grep -v '^x$'; exit 1; fi; }
[ $bad = 0 ]
echo "layers: every include goes down"
