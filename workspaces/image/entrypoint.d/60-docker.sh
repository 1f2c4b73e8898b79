# shellcheck shell=bash disable=SC2154  # user is set by portal-entrypoint, which sources this
# Docker inside the workspace. The portal sets PORTAL_DOCKER=1 only for members granted it and
# only when it runs the container under Sysbox (WORKSPACE_DOCKER_RUNTIME=sysbox-runc), which
# gives the container its own user namespace, so this dockerd runs without any privilege on
# the host and never sees the host's Docker socket. The member joins the docker group.
dockerd_conf=/etc/supervisor/conf.d/dockerd.conf
case ${PORTAL_DOCKER:-0} in
    1)
        usermod -aG docker "$user"
        install -d -m 0755 /etc/supervisor/conf.d
        cat >"$dockerd_conf" <<'CONF'
[program:dockerd]
command=/usr/bin/dockerd --host=unix:///var/run/docker.sock
priority=20
autorestart=true
redirect_stderr=true
stdout_logfile=/var/log/supervisor/dockerd.log
stdout_logfile_maxbytes=5MB
stdout_logfile_backups=2
CONF
        ;;
    0) rm -f "$dockerd_conf" ;;
    *) die "PORTAL_DOCKER $(quoted "$PORTAL_DOCKER") must be 0 or 1" ;;
esac
