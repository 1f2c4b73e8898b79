#!/bin/bash
# shellcheck disable=SC2016  # the bash -c snippets expand their own $1
# Docker HEALTHCHECK of the workspace images: succeeds only when every listed service answers.
#   ssh:PORT         sshd sends its SSH-2.0 banner
#   tcp:PORT         something accepts connections (xrdp)
#   http:PORT/PATH   a 2xx answer from http://127.0.0.1:PORT/PATH
set -uo pipefail

unhealthy() {
    echo "unhealthy: $*"
    exit 1
}

for check in "$@"; do
    kind=${check%%:*}
    target=${check#*:}
    case $kind in
        ssh)
            banner=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r line <&3 && printf %s "$line"' _ "$target") || true
            [[ $banner == SSH-2.0-* ]] || unhealthy "sshd does not answer on port $target"
            ;;
        tcp)
            timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$target" 2>/dev/null ||
                unhealthy "nothing accepts connections on port $target"
            ;;
        http)
            curl -fsS -m 3 -o /dev/null "http://127.0.0.1:$target" 2>/dev/null ||
                unhealthy "no 2xx answer from http://127.0.0.1:$target"
            ;;
        *)
            unhealthy "unknown check '$check'"
            ;;
    esac
done
echo healthy
