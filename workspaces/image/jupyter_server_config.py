"""Jupyter Server settings of every workspace image (read from /etc/jupyter).

The portal's gate (Traefik ForwardAuth) authenticates every request to the member's Jupyter
host, so Jupyter's own token and password are off. Its Origin and XSRF checks stay on: sibling
member hosts are same-site, and only those checks stop another member's page from driving this
server from the member's browser. Never set allow_origin="*" or disable_check_xsrf here.
"""

import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (injected by traitlets)

c.ServerApp.ip = "0.0.0.0"  # noqa: S104  (reached over the workspace network through the gate)
c.ServerApp.port = 8888
c.ServerApp.port_retries = 0  # fail loudly rather than move to a port nothing routes to
c.ServerApp.open_browser = False
c.ServerApp.allow_remote_access = True
c.ServerApp.trust_xheaders = True  # honour X-Forwarded-Proto/-For from Traefik
c.ServerApp.root_dir = os.path.expanduser("~")

c.IdentityProvider.token = ""
c.PasswordIdentityProvider.hashed_password = ""
