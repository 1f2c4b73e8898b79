# shellcheck shell=sh
# /etc/profile.d/portal.sh: login shells (SSH, X2Go, RDP) see what the services see.
case ":$PATH:" in
    *:/opt/ml/bin:*) ;;
    *) PATH="/opt/ml/bin:$PATH" ;;
esac
export PATH
portal_runtime_dir="/run/user/$(id -u)"
if [ -d "$portal_runtime_dir" ]; then
    XDG_RUNTIME_DIR=$portal_runtime_dir
    export XDG_RUNTIME_DIR
fi
unset portal_runtime_dir
