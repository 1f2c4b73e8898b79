#!/bin/bash
# The slim test image's supervisor: runs sshd and JupyterLab (as the member), forwards
# SIGTERM to both, and exits as soon as either dies, so the container's exit status, restart
# policy and health report the failure instead of a half-working workspace.
set -uo pipefail

user=${PORTAL_USER:?PORTAL_USER is not set; start through portal-entrypoint}
home=/home/$user
uid=$(id -u "$user")
gid=$(id -g "$user")

pids=()
stop_all() {
    ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null
    wait
}
trap 'stop_all; exit 0' TERM INT

/usr/sbin/sshd -D -e &
sshd_pid=$!
pids+=("$sshd_pid")
cd "$home" || exit 1
setpriv --reuid="$uid" --regid="$gid" --init-groups \
    env -i HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash LANG=C.UTF-8 \
    PATH=/opt/ml/bin:/usr/local/bin:/usr/bin:/bin /opt/ml/bin/jupyter lab &
jupyter_pid=$!
pids+=("$jupyter_pid")

wait -n -p exited_pid "${pids[@]}"
status=$?
name=sshd
[[ ${exited_pid:-} == "$jupyter_pid" ]] && name=jupyter-lab
echo "portal-supervise: $name exited with status $status; stopping the workspace" >&2
stop_all
exit $((status == 0 ? 1 : status))
