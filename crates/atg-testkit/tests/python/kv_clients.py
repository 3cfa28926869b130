"""Drive the atg-testkit emulator with the official Azure Key Vault Python clients.

The clients run unchanged except for two test seams: they trust the emulator's CA
(`connection_verify=<ca.pem>`) and `socket.getaddrinfo` resolves the vault hosts to the emulator
(URLs carry no port, nextLinks carry :443). The credential returns a token minted by the Rust test.

Usage: kv_clients.py  (reads ATG_EMULATOR_ADDR, ATG_EMULATOR_CA, ATG_EMULATOR_TOKEN)
Exits non-zero with a message on the first failed expectation. Never prints secret values.
"""

import base64
import datetime
import json
import os
import socket
import ssl
import sys
import time
import urllib.request

try:
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
    from azure.keyvault.certificates import (
        CertificateClient,
        CertificateContentType,
        CertificatePolicy,
    )
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.secrets import SecretClient
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID
except ImportError as error:  # the Rust test turns this into a loud failure with a hint
    print(f"missing python package: {error}; run scripts/setup.sh", file=sys.stderr)
    sys.exit(3)

HOST, PORT = os.environ["ATG_EMULATOR_ADDR"].rsplit(":", 1)
PORT = int(PORT)
CA = os.environ["ATG_EMULATOR_CA"]
TOKEN = os.environ["ATG_EMULATOR_TOKEN"]
VAULT = "pyvault"
VAULT_URL = f"https://{VAULT}.vault.azure.net"

_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".vault.azure.net"):
        return _real_getaddrinfo(HOST, PORT, *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


class MintedCredential:
    """The smallest TokenCredential: always the token the Rust test minted."""

    def __init__(self):
        self.scopes = []

    def get_token(self, *scopes, **kwargs):
        self.scopes.extend(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def step(name):
    print(f"step: {name}", flush=True)


def control(path):
    context = ssl.create_default_context(cafile=CA)
    request = urllib.request.Request(f"https://{VAULT}.vault.azure.net/_emulator/{path}")
    with urllib.request.urlopen(request, context=context) as response:
        return json.load(response)


def self_signed_pfx(password):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imported.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pfx = pkcs12.serialize_key_and_certificates(
        b"imported", key, certificate, None, serialization.BestAvailableEncryption(password)
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    return pfx, pem, certificate


def main():
    credential = MintedCredential()
    common = {"connection_verify": CA, "retry_total": 0}
    secrets = SecretClient(VAULT_URL, credential, **common)
    keys = KeyClient(VAULT_URL, credential, **common)
    certificates = CertificateClient(VAULT_URL, credential, **common)

    step("secrets: set, get, versions")
    first = secrets.set_secret("py-secret", "value-1", content_type="text/plain", tags={"a": "b"})
    check(len(first.properties.version) == 32, "version id has 32 hex digits")
    check(credential.scopes == ["https://vault.azure.net/.default"], f"scope from challenge: {credential.scopes}")
    second = secrets.set_secret("py-secret", "value-2")
    check(second.properties.version != first.properties.version, "a set makes a new version")
    check(secrets.get_secret("py-secret").value == "value-2", "latest value")
    check(secrets.get_secret("py-secret", first.properties.version).value == "value-1", "old version value")
    check(len(list(secrets.list_properties_of_secret_versions("py-secret"))) == 2, "two versions")

    step("secrets: paging over 30 items")
    for index in range(30):
        secrets.set_secret(f"page-{index:02}", "v")
    names = [item.name for item in secrets.list_properties_of_secrets(max_page_size=10)]
    check(len(names) == 31, f"31 secrets listed across pages, got {len(names)}")

    step("secrets: disabled secret is forbidden")
    secrets.update_secret_properties("page-00", enabled=False)
    try:
        secrets.get_secret("page-00")
        check(False, "disabled secret must not be readable")
    except HttpResponseError as error:
        check(error.status_code == 403, f"403 for a disabled secret, got {error.status_code}")

    step("secrets: delete, conflict, recover, purge")
    deleted = secrets.begin_delete_secret("py-secret", _polling_interval=0.1).result()
    check(deleted.recovery_id.endswith("/deletedsecrets/py-secret"), "recovery id")
    check(any(d.name == "py-secret" for d in secrets.list_deleted_secrets()), "listed as deleted")
    try:
        secrets.set_secret("py-secret", "value-3")
        check(False, "set on a soft-deleted name must conflict")
    except ResourceExistsError as error:
        check(error.status_code == 409, "409 conflict")
    secrets.begin_recover_deleted_secret("py-secret", _polling_interval=0.1).result()
    check(secrets.get_secret("py-secret").value == "value-2", "recovered value")
    secrets.begin_delete_secret("py-secret", _polling_interval=0.1).result()
    secrets.purge_deleted_secret("py-secret")
    try:
        secrets.get_deleted_secret("py-secret")
        check(False, "purged secret is gone")
    except ResourceNotFoundError:
        pass
    secrets.set_secret("py-secret", "value-4")

    step("keys: rsa and ec")
    rsa_key = keys.create_rsa_key("py-rsa", size=2048)
    check(len(rsa_key.key.n) == 256 and rsa_key.key.e == b"\x01\x00\x01", "rsa public jwk")
    ec_key = keys.create_ec_key("py-ec", curve="P-256")
    check(len(ec_key.key.x) == 32 and len(ec_key.key.y) == 32, "ec public jwk")
    check({k.name for k in keys.list_properties_of_keys()} == {"py-rsa", "py-ec"}, "keys listed")

    step("certificates: create self-signed with the poller")
    poller = certificates.begin_create_certificate(
        "py-cert", CertificatePolicy.get_default(), _polling_interval=0.2
    )
    created = poller.result()
    check(created.cer is not None and created.properties.x509_thumbprint, "certificate has cer and x5t")
    backing = secrets.get_secret("py-cert")
    check(backing.properties.managed, "backing secret is managed")
    check(backing.properties.content_type == "application/x-pkcs12", "pkcs12 backing secret")
    key, leaf, _ = pkcs12.load_key_and_certificates(base64.b64decode(backing.value), None)
    check(key is not None and leaf.public_bytes(serialization.Encoding.DER) == bytes(created.cer), "pfx holds key and cer")
    check(keys.get_key("py-cert").properties.managed, "backing key is managed")
    policy = certificates.get_certificate_policy("py-cert")
    check(policy.issuer_name == "Self" and policy.subject == "CN=DefaultPolicy", "policy round-trips")

    step("certificates: import pfx and pem")
    pfx, pem, certificate = self_signed_pfx(b"pw")
    imported = certificates.import_certificate("py-imported", pfx, password="pw")
    check(bytes(imported.cer) == certificate.public_bytes(serialization.Encoding.DER), "imported cer")
    pem_policy = CertificatePolicy.get_default()
    pem_policy._content_type = CertificateContentType.pem
    imported_pem = certificates.import_certificate("py-imported-pem", pem, policy=pem_policy)
    check(bytes(imported_pem.cer) == certificate.public_bytes(serialization.Encoding.DER), "imported pem cer")
    pem_secret = secrets.get_secret("py-imported-pem")
    check("BEGIN CERTIFICATE" in pem_secret.value, "pem backing secret")
    names = {c.name for c in certificates.list_properties_of_certificates()}
    check(names == {"py-cert", "py-imported", "py-imported-pem"}, f"certificates listed: {names}")

    step("challenge: each client probed once without bearer or body")
    log = control("requests")
    vault_requests = [entry for entry in log if entry.get("vault") == VAULT]
    check(vault_requests and not vault_requests[0]["bearer"] and vault_requests[0]["status"] == 401, "challenge first")
    probes = [entry for entry in vault_requests if not entry["bearer"]]
    # One pipeline per client (secrets, keys, certificates), each caching its challenge.
    check(len(probes) == 3, f"one challenge per client, got {len(probes)}")
    check(all(p["status"] == 401 and not p["body_has_value"] for p in probes), "probes are 401 without body")
    print("ok")


if __name__ == "__main__":
    main()
