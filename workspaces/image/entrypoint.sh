#!/bin/bash
# Entrypoint of every workspace image (production and the slim test image).
#
# Creates the member's Linux account from the portal's environment, installs the portal-managed
# SSH keys and this workspace's host keys, then execs the image's supervisor (the CMD).
# It runs as root on every start, so each step is idempotent, and it never walks the home
# directory: a recursive chown of a big $HOME costs minutes at every start.
#
# Environment (set by the portal's container spec):
#   PORTAL_USER               login name, ^[a-z_][a-z0-9_-]{0,31}$, not an existing system account
#   PORTAL_UID, PORTAL_GID    numeric, >= 1000 (the member's stable host identity)
#   PORTAL_SUDO               0 or 1: passwordless sudo inside the workspace
#   PORTAL_DOCKER             0 or 1: production image only (entrypoint.d/60-docker.sh)
#   PORTAL_AUTHORIZED_KEYS    newline-separated OpenSSH public keys (no options)
#   PORTAL_DESKTOP_PASSWORD   optional: the account password xrdp (Guacamole's RDP) logs in with;
#                             sshd never accepts passwords. Without it the account has no password.
# Volumes the portal may mount: /home/$PORTAL_USER (the home) and /etc/ssh/keys (host keys, so
# the workspace keeps its SSH identity when the container is recreated).
set -euo pipefail

HOSTKEY_DIR=/etc/ssh/keys
KEYS_DIR=/etc/ssh/authorized_keys.d
HOOK_DIR=/etc/portal/entrypoint.d
KEY_LINE_RE='^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^[:cntrl:]]*)?$'

die() {
    echo "portal-entrypoint: refusing to start: $*" >&2
    exit 64
}

quoted() { printf '%q' "$1"; }

validate_env() {
    [[ $user =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "PORTAL_USER $(quoted "$user") is not a valid login name"
    local name value
    for name in PORTAL_UID PORTAL_GID; do
        value=${!name:-}
        if ! [[ $value =~ ^[1-9][0-9]{3,9}$ ]] || ((value > 4294967294)); then
            die "$name $(quoted "$value") must be a number from 1000 to 4294967294"
        fi
    done
    [[ $sudo_flag == 0 || $sudo_flag == 1 ]] || die "PORTAL_SUDO $(quoted "$sudo_flag") must be 0 or 1"
    [[ ${PORTAL_DESKTOP_PASSWORD:-} != *$'\n'* ]] || die "PORTAL_DESKTOP_PASSWORD must be one line"
}

# An existing account or group may only be the member's own from an earlier start of this
# container; anything else (root, daemon, a clash of ids) is refused, never reused.
check_existing() {
    local existing
    existing=$(getent passwd "$user" | cut -d: -f3 || true)
    [[ -z $existing || $existing == "$uid" ]] || die "PORTAL_USER '$user' is an existing account with uid $existing"
    existing=$(getent passwd "$uid" | cut -d: -f1 || true)
    [[ -z $existing || $existing == "$user" ]] || die "uid $uid already belongs to '$existing'"
    existing=$(getent group "$user" | cut -d: -f3 || true)
    [[ -z $existing || $existing == "$gid" ]] || die "group '$user' already exists with gid $existing"
    existing=$(getent group "$gid" | cut -d: -f1 || true)
    [[ -z $existing || $existing == "$user" ]] || die "gid $gid already belongs to group '$existing'"
}

ensure_account() {
    getent group "$user" >/dev/null || groupadd --gid "$gid" "$user"
    getent passwd "$user" >/dev/null ||
        useradd --no-create-home --no-log-init --home-dir "$home" --shell /bin/bash \
            --uid "$uid" --gid "$gid" "$user"
    if [[ -n ${PORTAL_DESKTOP_PASSWORD:-} ]]; then
        printf '%s:%s\n' "$user" "$PORTAL_DESKTOP_PASSWORD" | chpasswd
    else
        usermod --password '*' "$user" # no password, but not "locked": key logins work
    fi
}

# Only a new or empty home is touched: its directory gets the member as owner and the skeleton
# files are copied *as the member*, so nothing is chowned recursively and no symlink a member
# left in their home can make root write elsewhere.
ensure_home() {
    if [[ ! -d $home ]]; then
        install -d -m 0750 -o "$uid" -g "$gid" "$home"
    elif [[ -n $(find "$home" -mindepth 1 -maxdepth 1 -print -quit) ]]; then
        return 0
    else
        chown "$uid:$gid" "$home" && chmod 0750 "$home"
    fi
    setpriv --reuid="$uid" --regid="$gid" --clear-groups cp -rT /etc/skel "$home"
}

# The keys live outside the home, owned by root: only the portal decides who may log in, and
# removing a key in the portal removes it here at the next start.
write_authorized_keys() {
    local line tmp
    install -d -m 0755 -o root -g root "$KEYS_DIR"
    tmp=$(mktemp "$KEYS_DIR/.tmp.XXXXXX")
    while IFS= read -r line; do
        line=${line%$'\r'}
        [[ $line =~ ^[[:space:]]*$ ]] && continue
        [[ $line =~ $KEY_LINE_RE ]] || { rm -f "$tmp"; die "PORTAL_AUTHORIZED_KEYS has a line that is not a plain public key"; }
        printf '%s\n' "$line" >>"$tmp"
    done <<<"${PORTAL_AUTHORIZED_KEYS:-}"
    chmod 0644 "$tmp" && mv -f "$tmp" "$KEYS_DIR/$user"
}

set_sudo() {
    if [[ $sudo_flag == 1 ]]; then
        usermod -aG sudo "$user"
        printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$user" >/etc/sudoers.d/portal-member
        chmod 0440 /etc/sudoers.d/portal-member
    else
        gpasswd -d "$user" sudo >/dev/null 2>&1 || true
        rm -f /etc/sudoers.d/portal-member
    fi
}

ensure_host_keys() {
    local kind
    install -d -m 0755 "$HOSTKEY_DIR"
    for kind in ed25519 rsa; do
        if [[ ! -s $HOSTKEY_DIR/ssh_host_${kind}_key ]]; then
            rm -f "$HOSTKEY_DIR/ssh_host_${kind}_key" "$HOSTKEY_DIR/ssh_host_${kind}_key.pub"
            ssh-keygen -q -t "$kind" -N '' -C "" -f "$HOSTKEY_DIR/ssh_host_${kind}_key"
        fi
    done
}

configure_sshd() {
    printf 'AllowUsers %s\n' "$user" >/etc/ssh/sshd_config.d/20-portal-user.conf
    install -d -m 0755 /run/sshd
    /usr/sbin/sshd -t || die "sshd rejects its configuration"
}

run_hooks() {
    local hook
    for hook in "$HOOK_DIR"/*.sh; do
        [[ -e $hook ]] || continue
        # shellcheck source=/dev/null
        source "$hook"
    done
}

user=${PORTAL_USER:-}
uid=${PORTAL_UID:-}
gid=${PORTAL_GID:-}
sudo_flag=${PORTAL_SUDO:-0}
home=/home/$user

validate_env
check_existing
ensure_account
ensure_home
write_authorized_keys
set_sudo
ensure_host_keys
configure_sshd
run_hooks

# The supervised services inherit this environment; secrets stop here.
unset PORTAL_AUTHORIZED_KEYS PORTAL_DESKTOP_PASSWORD
export PORTAL_USER PORTAL_UID PORTAL_GID
exec "$@"
