"""Seeds and reads Azurite accounts with Microsoft's official Python SDKs, so atg's Storage
results are checked by a different client than the one under test.

    python3 storage_clients.py seed CONNECTION_STRING CA_PEM SPEC_JSON
    python3 storage_clients.py put-blob CONNECTION_STRING CA_PEM CONTAINER BLOB_JSON
    python3 storage_clients.py dump CONNECTION_STRING CA_PEM   -> JSON on stdout
    python3 storage_clients.py bulk CONNECTION_STRING CA_PEM CONTAINER COUNT MIN MAX SEED

The connection string is path-style against Azurite (https://127.0.0.1:PORT/ACCOUNT).
"""

import base64
import datetime
import hashlib
import json
import random
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

from azure.data.tables import EdmType, EntityProperty, TableServiceClient, TableAccessPolicy
from azure.storage.blob import (AccessPolicy, BlobServiceClient,
                                ContentSettings)
from azure.storage.queue import AccessPolicy as QueueAccessPolicy, QueueServiceClient


def clients(conn, ca):
    return (
        BlobServiceClient.from_connection_string(conn, connection_verify=ca),
        QueueServiceClient.from_connection_string(conn, connection_verify=ca),
        TableServiceClient.from_connection_string(conn, connection_verify=ca),
    )


def payload(name, size):
    # Not periodic: a range copied from the wrong offset shows up as different bytes.
    return random.Random(name).randbytes(size)


def typed(value):
    kind, raw = value
    if kind == "Int64":
        return EntityProperty(int(raw), EdmType.INT64)
    if kind == "Int32":
        return EntityProperty(int(raw), EdmType.INT32)
    if kind == "Double":
        # From text ("95.34441969555881", "inf", "nan", "1e21"): exact, and JSON has no NaN.
        return EntityProperty(float(raw), EdmType.DOUBLE)
    if kind == "Boolean":
        return bool(raw)
    if kind == "DateTime":
        return datetime.datetime.fromisoformat(raw)
    if kind == "Guid":
        return uuid.UUID(raw)
    if kind == "Binary":
        return base64.b64decode(raw)
    return str(raw)


def put_blob(container, b):
    """Writes blob `b` of a seed spec (replacing one of that name)."""
    client = container.get_blob_client(b["name"])
    settings = ContentSettings(content_type=b.get("content_type"),
                               content_encoding=b.get("content_encoding"),
                               content_language=b.get("content_language"),
                               cache_control=b.get("cache_control"),
                               content_disposition=b.get("content_disposition"))
    kind = b.get("type", "BlockBlob")
    data = payload(b["name"], b.get("size", 100))
    if kind == "PageBlob":
        size = (len(data) + 511) // 512 * 512
        client.create_page_blob(size, content_settings=settings, metadata=b.get("metadata"))
        # "pages": [[offset, length], ...] writes only those ranges (a sparse disk);
        # otherwise the whole blob is written.
        for offset, length in b.get("pages", [[0, size]]):
            chunk = data.ljust(size, b"\0")[offset:offset + length]
            for at in range(0, length, 4 * 1024 * 1024):
                piece = chunk[at:at + 4 * 1024 * 1024]
                client.upload_page(piece, offset=offset + at, length=len(piece))
    elif kind == "AppendBlob":
        client.create_append_blob(content_settings=settings, metadata=b.get("metadata"))
        for at in range(0, len(data), 4 * 1024 * 1024):
            client.append_block(data[at:at + 4 * 1024 * 1024])
    else:
        client.upload_blob(data, content_settings=settings, metadata=b.get("metadata"),
                           overwrite=True)
    if b.get("tags"):
        client.set_blob_tags(b["tags"])
    if b.get("tier"):
        client.set_standard_blob_tier(b["tier"])


def seed(conn, ca, spec):
    blob, queue, table = clients(conn, ca)
    for c in spec.get("containers", []):
        container = blob.create_container(c["name"], metadata=c.get("metadata"),
                                          public_access=c.get("public_access"))
        if c.get("policies"):
            container.set_container_access_policy(
                signed_identifiers={p["id"]: AccessPolicy(permission=p.get("permission", "rl"),
                                                          start=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
                                                          expiry=datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
                                    for p in c["policies"]},
                public_access=c.get("public_access"))
        for b in c.get("blobs", []):
            put_blob(container, b)
    for q in spec.get("queues", []):
        client = queue.create_queue(q["name"], metadata=q.get("metadata"))
        if q.get("policies"):
            client.set_queue_access_policy({p: QueueAccessPolicy(permission="rp",
                                                                 start=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
                                                                 expiry=datetime.datetime(2031, 6, 1, tzinfo=datetime.timezone.utc))
                                            for p in q["policies"]})
        for message in q.get("messages", []):
            client.send_message(message)
    for t in spec.get("tables", []):
        client = table.create_table(t["name"])
        if t.get("policies"):
            client.set_table_access_policy({p: TableAccessPolicy(permission="r",
                                                                 start=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
                                                                 expiry=datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
                                            for p in t["policies"]})
        for entity in t.get("entities", []):
            client.upsert_entity({k: (typed(v) if isinstance(v, list) else v) for k, v in entity.items()})


def describe(value):
    if isinstance(value, EntityProperty):
        return [str(value.edm_type), describe(value.value)[1]]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", value]
    if isinstance(value, float):
        # repr is the shortest text that reads back to the same bits (and names inf and nan).
        return ["float", repr(value)]
    if isinstance(value, datetime.datetime):
        return ["datetime", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["guid", str(value)]
    if isinstance(value, bytes):
        return ["bytes", base64.b64encode(value).decode()]
    return [type(value).__name__, str(value)]


def policies(by_id):
    """Stored access policies as comparable data: id, permission, start, expiry."""
    def text(value):
        return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value is not None else None)
    return sorted(([i, str(p.permission) if p and p.permission else None,
                    text(p.start) if p else None, text(p.expiry) if p else None]
                   for i, p in by_id.items()), key=lambda e: e[0])


def dump(conn, ca):
    blob, queue, table = clients(conn, ca)
    out = {"containers": {}, "queues": {}, "tables": {}}
    for c in blob.list_containers(include_metadata=True):
        container = blob.get_container_client(c.name)
        policy = container.get_container_access_policy()
        blobs = {}
        def one(props):
            client = container.get_blob_client(props.name)
            data = client.download_blob().readall() if props.blob_tier != "Archive" else b""
            cs = props.content_settings
            return props.name, {
                "size": props.size,
                "sha256": hashlib.sha256(data).hexdigest() if data or props.size == 0 else None,
                "type": str(props.blob_type),
                "content_type": cs.content_type, "content_encoding": cs.content_encoding,
                "content_language": cs.content_language, "cache_control": cs.cache_control,
                "content_disposition": cs.content_disposition,
                "content_md5": base64.b64encode(cs.content_md5).decode() if cs.content_md5 else None,
                "metadata": dict(props.metadata or {}),
                "tags": client.get_blob_tags() or {},
                "tier": props.blob_tier if not props.blob_tier_inferred else None,
            }
        with ThreadPoolExecutor(16) as pool:
            for name, info in pool.map(one, container.list_blobs(include=["metadata", "tags"])):
                blobs[name] = info
        out["containers"][c.name] = {
            "metadata": dict(c.metadata or {}),
            "public_access": policy.get("public_access"),
            "policies": policies({p.id: p.access_policy for p in policy.get("signed_identifiers", [])}),
            "blobs": blobs,
        }
    for q in queue.list_queues(include_metadata=True):
        client = queue.get_queue_client(q.name)
        props = client.get_queue_properties()
        out["queues"][q.name] = {"metadata": dict(props.metadata or {}),
                                 "policies": policies(client.get_queue_access_policy()),
                                 "messages": props.approximate_message_count,
                                 "peeked": sorted(m.content for m in client.peek_messages(max_messages=32))}
    for t in table.list_tables():
        client = table.get_table_client(t.name)
        entities = []
        for e in client.list_entities():
            entities.append({k: describe(v) for k, v in sorted(e.items())})
        entities.sort(key=lambda e: (e["PartitionKey"][1], e["RowKey"][1]))
        out["tables"][t.name] = {
            "policies": policies(client.get_table_access_policy()),
            "entities": entities,
        }
    json.dump(out, sys.stdout, sort_keys=True)


def bulk(conn, ca, container_name, count, low, high, seed_value):
    blob, _, _ = clients(conn, ca)
    container = blob.get_container_client(container_name)
    try:
        container.create_container()
    except Exception:
        pass
    rng = random.Random(int(seed_value))
    sizes = [rng.randint(int(low), int(high)) for _ in range(int(count))]
    def put(i):
        name = f"b/{i:07d}"
        container.get_blob_client(name).upload_blob(payload(name, sizes[i]), overwrite=True)
        return sizes[i]
    with ThreadPoolExecutor(32) as pool:
        total = sum(pool.map(put, range(int(count))))
    print(json.dumps({"blobs": int(count), "bytes": total}))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "seed":
        seed(sys.argv[2], sys.argv[3], json.loads(open(sys.argv[4]).read()))
    elif command == "put-blob":
        blob, _, _ = clients(sys.argv[2], sys.argv[3])
        put_blob(blob.get_container_client(sys.argv[4]), json.loads(sys.argv[5]))
    elif command == "dump":
        dump(sys.argv[2], sys.argv[3])
    elif command == "bulk":
        bulk(*sys.argv[2:9])
    else:
        sys.exit(f"unknown command {command}")
