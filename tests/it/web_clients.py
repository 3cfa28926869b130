"""Seeds and reads App Service sites on the emulator's ARM with Microsoft's official management
client (azure-mgmt-web), so atg's App Service results are checked by a different client than the
one under test.

    python3 web_clients.py seed SPEC_JSON   seeds the sites (then the keys) the spec describes
    python3 web_clients.py dump SITE_ID     -> JSON on stdout: what the site holds

The client runs unchanged except for two test seams: it trusts the emulator's CA
(`connection_verify=<ca.pem>`) and `socket.getaddrinfo` resolves management.azure.com to the
emulator. The credential returns a token minted by the Rust test.
Environment: ATG_EMULATOR_ADDR, ATG_EMULATOR_CA, ATG_EMULATOR_TOKEN.
"""

import json
import os
import socket
import sys
import time

try:
    from azure.core.credentials import AccessToken
    from azure.mgmt.web import WebSiteManagementClient
    from azure.mgmt.web.models import (
        ConnectionStringDictionary,
        ConnStringValueTypePair,
        CorsSettings,
        KeyInfo,
        Site,
        SiteConfigResource,
        SlotConfigNamesResource,
        StringDictionary,
    )
except ImportError as error:  # the Rust test turns this into a loud failure with a hint
    print(f"missing python package: {error}; run scripts/setup.sh", file=sys.stderr)
    sys.exit(3)

HOST, PORT = os.environ["ATG_EMULATOR_ADDR"].rsplit(":", 1)
PORT = int(PORT)
CA = os.environ["ATG_EMULATOR_CA"]
TOKEN = os.environ["ATG_EMULATOR_TOKEN"]

_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    if host == "management.azure.com":
        return _real_getaddrinfo(HOST, PORT, *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


class MintedCredential:
    """The smallest TokenCredential: always the token the Rust test minted."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken(TOKEN, int(time.time()) + 3600)


def client_and_names(site_id):
    parts = site_id.strip("/").split("/")
    subscription, group, name = parts[1], parts[3], parts[7]
    client = WebSiteManagementClient(
        MintedCredential(), subscription, connection_verify=CA
    )
    return client.web_apps, group, name


def seed_maps(apps, group, name, spec, slot=None):
    settings = spec.get("app_settings")
    strings = spec.get("connection_strings")
    suffix = "_slot" if slot else ""
    args = (group, name, slot) if slot else (group, name)
    if settings is not None:
        getattr(apps, "update_application_settings" + suffix)(
            *args, StringDictionary(properties=settings)
        )
    if strings is not None:
        pairs = {
            key: ConnStringValueTypePair(value=value["value"], type=value["type"])
            for key, value in strings.items()
        }
        getattr(apps, "update_connection_strings" + suffix)(
            *args, ConnectionStringDictionary(properties=pairs)
        )
    config = spec.get("site_config")
    if config is not None:
        resource = SiteConfigResource(
            always_on=config.get("always_on"),
            default_documents=config.get("default_documents"),
            cors=CorsSettings(allowed_origins=config["cors"]) if "cors" in config else None,
        )
        getattr(apps, "update_configuration" + suffix)(*args, resource)


def seed(spec):
    for site in spec.get("sites", []):
        apps, group, name = client_and_names(site["id"])
        farm = site["server_farm_id"]
        apps.begin_create_or_update(
            group,
            name,
            Site(location=site["location"], kind=site["kind"], server_farm_id=farm),
        ).result()
        seed_maps(apps, group, name, site)
        for slot, slot_spec in site.get("slots", {}).items():
            apps.begin_create_or_update_slot(
                group, name, slot, Site(location=site["location"], server_farm_id=farm)
            ).result()
            seed_maps(apps, group, name, slot_spec, slot)
        sticky = site.get("sticky")
        if sticky is not None:
            apps.update_slot_configuration_names(
                group,
                name,
                SlotConfigNamesResource(
                    app_setting_names=sticky.get("app_setting_names", []),
                    connection_string_names=sticky.get("connection_string_names", []),
                ),
            )
    # Keys, once the Rust test has seeded the functions they belong to.
    for keys in spec.get("keys", []):
        apps, group, name = client_and_names(keys["site"])
        for key_type, named in keys.get("host", {}).items():
            for key_name, value in named.items():
                apps.create_or_update_host_secret(
                    group, name, key_type, key_name, KeyInfo(name=key_name, value=value)
                )
        for function, named in keys.get("functions", {}).items():
            for key_name, value in named.items():
                apps.create_or_update_function_secret(
                    group, name, function, key_name, KeyInfo(name=key_name, value=value)
                )


def dump_maps(apps, group, name, slot=None):
    suffix = "_slot" if slot else ""
    args = (group, name, slot) if slot else (group, name)
    settings = getattr(apps, "list_application_settings" + suffix)(*args).properties or {}
    strings = getattr(apps, "list_connection_strings" + suffix)(*args).properties or {}
    config = getattr(apps, "get_configuration" + suffix)(*args)
    return {
        "app_settings": settings,
        "connection_strings": {
            key: {"value": value.value, "type": getattr(value.type, "value", value.type)}
            for key, value in strings.items()
        },
        "site_config": {
            "always_on": config.always_on,
            "default_documents": config.default_documents,
            "cors": config.cors.allowed_origins if config.cors else None,
        },
    }


def dump(site_id):
    apps, group, name = client_and_names(site_id)
    out = dump_maps(apps, group, name)
    sticky = apps.list_slot_configuration_names(group, name)
    out["sticky"] = {
        "app_setting_names": sticky.app_setting_names or [],
        "connection_string_names": sticky.connection_string_names or [],
    }
    out["slots"] = {}
    for slot in apps.list_slots(group, name):
        short = slot.name.rsplit("/", 1)[-1]
        out["slots"][short] = dump_maps(apps, group, name, short)
    site = apps.get(group, name)
    if "functionapp" in (site.kind or ""):
        keys = apps.list_host_keys(group, name)
        out["host_keys"] = {
            "function_keys": keys.function_keys or {},
            "system_keys": keys.system_keys or {},
        }
        out["function_keys"] = {}
        for function in apps.list_functions(group, name):
            short = function.name.rsplit("/", 1)[-1]
            out["function_keys"][short] = (
                apps.list_function_keys(group, name, short).properties or {}
            )
    return out


def main():
    command = sys.argv[1]
    if command == "seed":
        with open(sys.argv[2]) as file:
            seed(json.load(file))
    elif command == "dump":
        print(json.dumps(dump(sys.argv[2]), sort_keys=True))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
