#!/bin/sh
# The sink container's entrypoint: join the groups that own the device nodes this container was
# given (the host's video gid differs between distributions: 44 Debian/Ubuntu, 39 Fedora, ...),
# then drop from root to the unprivileged holocam user and run the sink. No group id is typed
# anywhere, and the container needs only the SETUID/SETGID capabilities for this step.
#
#   holocam-sink-entrypoint [sink options...]   # python -m capture_sink run ... (the compose files)
#   holocam-sink-entrypoint COMMAND [ARGS...]   # any other command, as holocam with those groups
set -eu

case "${1:-}" in
    ""|-*) set -- python -m capture_sink run --health-file /tmp/holocam-sink.alive "$@" ;;
esac

if [ "$(id -u)" != "0" ]; then
    exec "$@"    # started with `user:` / --user: the groups are the caller's business
fi

groups=$(id -g holocam)
for node in /dev/video*; do
    [ -c "$node" ] || continue
    gid=$(stat -c %g "$node")
    if [ "$gid" = "0" ]; then
        # Joining root's group would open more than the camera: say what to fix instead.
        echo "holocam: $node belongs to group root, so holocam cannot join its group: on the host, give it" \
             "to the video group (sudo chgrp video $node) or add a udev rule" >&2
        continue
    fi
    case ",$groups," in
        *",$gid,"*) ;;
        *) groups="$groups,$gid" ;;
    esac
done

echo "holocam: running as holocam with groups $groups (from the device nodes)" >&2
exec setpriv --reuid=holocam --regid=holocam --groups="$groups" --inh-caps=-all "$@"
