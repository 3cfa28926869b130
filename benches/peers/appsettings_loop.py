"""The peer atg is measured against for App Service: what `az webapp config appsettings set`
does, once per site and one site after another: read the source's settings, read the target's,
then PUT the target's map with the source's settings in (the service replaces the whole map).

Runs unchanged against the emulator except for trusting its CA and resolving management.azure.com
to it. Usage: appsettings_loop.py PAIRS_JSON ([[source_id, target_id], ...]); env ATG_EMULATOR_ADDR,
ATG_EMULATOR_CA, ATG_EMULATOR_TOKEN. Prints one JSON line: {"sites": N, "seconds": S}. Never
prints values.
"""

import json
import os
import socket
import sys
import time

from azure.core.credentials import AccessToken
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import StringDictionary

HOST, PORT = os.environ["ATG_EMULATOR_ADDR"].rsplit(":", 1)
PORT = int(PORT)
_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    if host == "management.azure.com":
        return _real_getaddrinfo(HOST, PORT, *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


class MintedCredential:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["ATG_EMULATOR_TOKEN"], int(time.time()) + 3600)


def parts(site_id):
    segments = site_id.strip("/").split("/")
    return segments[1], segments[3], segments[7]


def main():
    with open(sys.argv[1]) as file:
        pairs = json.load(file)
    ca = os.environ["ATG_EMULATOR_CA"]
    credential = MintedCredential()
    clients = {}

    def apps(subscription):
        if subscription not in clients:
            clients[subscription] = WebSiteManagementClient(
                credential, subscription, connection_verify=ca
            ).web_apps
        return clients[subscription]

    started = time.monotonic()
    for source_id, target_id in pairs:
        source_sub, source_group, source_name = parts(source_id)
        target_sub, target_group, target_name = parts(target_id)
        source = apps(source_sub).list_application_settings(source_group, source_name)
        target = apps(target_sub).list_application_settings(target_group, target_name)
        merged = dict(target.properties or {})
        merged.update(source.properties or {})
        apps(target_sub).update_application_settings(
            target_group, target_name, StringDictionary(properties=merged)
        )
    print(json.dumps({"sites": len(pairs), "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
