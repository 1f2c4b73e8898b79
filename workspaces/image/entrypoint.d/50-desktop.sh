# shellcheck shell=bash disable=SC2154  # uid and gid are set by portal-entrypoint, which sources this
# Sourced by portal-entrypoint (production image) after the account exists.
# A runtime dir for the member's desktop sessions (no systemd-logind in a container), and
# per-container xrdp keys: the image ships none, so no two workspaces share a key.
install -d -m 0700 -o "$uid" -g "$gid" "/run/user/$uid"
# /run/xrdp and its sockdir, writable by the unprivileged xrdp and the member's X server.
sh /usr/share/xrdp/socksetup
if [[ ! -s /etc/xrdp/rsakeys.ini ]]; then
    xrdp-keygen xrdp /etc/xrdp/rsakeys.ini >/dev/null
    chmod 0640 /etc/xrdp/rsakeys.ini && chgrp xrdp /etc/xrdp/rsakeys.ini
fi
if [[ ! -s /etc/ssl/private/ssl-cert-snakeoil.key ]]; then
    make-ssl-cert generate-default-snakeoil --force-overwrite
fi
