#!/bin/sh
# xrdp session script (/etc/xrdp/startwm.sh): the member's KDE Plasma on X11.
if [ -r /etc/profile ]; then
    . /etc/profile
fi
unset DBUS_SESSION_BUS_ADDRESS SESSION_MANAGER
export XDG_SESSION_TYPE=x11 XDG_CURRENT_DESKTOP=KDE DESKTOP_SESSION=plasma KDE_FULL_SESSION=true
exec dbus-run-session -- startplasma-x11
