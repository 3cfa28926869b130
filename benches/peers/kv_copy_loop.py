"""The peer atg is measured against: ATG's approach to Key Vault replication, a sequential
get-then-set loop over the source's secrets with the official Python SDK.

Runs unchanged against the emulator except for trusting its CA and resolving vault hosts to it.
Usage: kv_copy_loop.py SOURCE_VAULT TARGET_VAULT (env ATG_EMULATOR_ADDR, ATG_EMULATOR_CA,
ATG_EMULATOR_TOKEN). Prints one JSON line: {"copied": N, "seconds": S}. Never prints values.
"""

import json
import os
import socket
import sys
import time

from azure.core.credentials import AccessToken
from azure.keyvault.secrets import SecretClient

HOST, PORT = os.environ["ATG_EMULATOR_ADDR"].rsplit(":", 1)
PORT = int(PORT)
_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".vault.azure.net"):
        return _real_getaddrinfo(HOST, PORT, *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


class MintedCredential:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["ATG_EMULATOR_TOKEN"], int(time.time()) + 3600)


def main():
    source_name, target_name = sys.argv[1], sys.argv[2]
    ca = os.environ["ATG_EMULATOR_CA"]
    credential = MintedCredential()
    source = SecretClient(f"https://{source_name}.vault.azure.net", credential, connection_verify=ca)
    target = SecretClient(f"https://{target_name}.vault.azure.net", credential, connection_verify=ca)
    started = time.monotonic()
    copied = 0
    for properties in source.list_properties_of_secrets():
        secret = source.get_secret(properties.name)
        target.set_secret(
            properties.name,
            secret.value,
            content_type=secret.properties.content_type,
            tags=secret.properties.tags,
        )
        copied += 1
    print(json.dumps({"copied": copied, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
