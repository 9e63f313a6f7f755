#!/usr/bin/env python3
"""Send a real MongoDB `ping` and exit 0 only if the server answers ok: 1.

Standard library only: infra.sh runs this before any project virtualenv
exists, so it cannot rely on pymongo/motor. It speaks just enough of the
wire protocol for one round trip: an OP_MSG (opcode 2013) whose single
kind-0 section is the BSON document {ping: 1, $db: "admin"}.

Usage:
    mongo_ping.py [mongodb://HOST:PORT/ | HOST:PORT] [--timeout SECONDS]

Works against FerretDB and MongoDB alike (both have spoken OP_MSG since 3.6).
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
from urllib.parse import urlsplit

OP_MSG = 2013


def bson_ping() -> bytes:
    """Hand-encode {ping: int32 1, $db: "admin"}."""

    def cstring(s: str) -> bytes:
        return s.encode() + b"\x00"

    body = b"\x10" + cstring("ping") + struct.pack("<i", 1)  # 0x10 = int32
    db = b"admin"
    body += (
        b"\x02" + cstring("$db") + struct.pack("<i", len(db) + 1) + db + b"\x00"
    )  # 0x02 = string
    return struct.pack("<i", 4 + len(body) + 1) + body + b"\x00"


# Size of fixed-width BSON values, by type byte; variable-size types are handled below.
_FIXED = {
    0x01: 8,
    0x07: 12,
    0x08: 1,
    0x09: 8,
    0x0A: 0,
    0x10: 4,
    0x11: 8,
    0x12: 8,
    0x13: 16,
    0xFF: 0,
    0x7F: 0,
}


def bson_top_level(doc: bytes) -> dict[str, object]:
    """Decode the top-level scalar fields we care about (ok, errmsg, code).

    Nested documents/arrays/binaries are skipped, not decoded.
    """
    out: dict[str, object] = {}
    (total,) = struct.unpack_from("<i", doc, 0)
    i = 4
    while i < total - 1:
        t = doc[i]
        i += 1
        end = doc.index(b"\x00", i)
        name = doc[i:end].decode("utf-8", "replace")
        i = end + 1
        if t == 0x01:
            out[name] = struct.unpack_from("<d", doc, i)[0]
        elif t == 0x10:
            out[name] = struct.unpack_from("<i", doc, i)[0]
        elif t == 0x12:
            out[name] = struct.unpack_from("<q", doc, i)[0]
        elif t == 0x08:
            out[name] = doc[i] == 1
        elif t == 0x02:
            (n,) = struct.unpack_from("<i", doc, i)
            out[name] = doc[i + 4 : i + 4 + n - 1].decode("utf-8", "replace")
            i += 4 + n
            continue
        if t in _FIXED:
            i += _FIXED[t]
        elif t in (0x03, 0x04):  # embedded document / array: length-prefixed
            i += struct.unpack_from("<i", doc, i)[0]
        elif t == 0x05:  # binary: int32 length + subtype byte + data
            i += 4 + 1 + struct.unpack_from("<i", doc, i)[0]
        elif t in (0x0D, 0x0E):  # JS code / symbol: like string
            i += 4 + struct.unpack_from("<i", doc, i)[0]
        else:  # a type we never expect in a ping reply: stop, keep what we have
            break
    return out


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection mid-reply")
        buf += chunk
    return bytes(buf)


def ping(host: str, port: int, timeout: float) -> dict[str, object]:
    request_id = int.from_bytes(os.urandom(3), "little")
    payload = struct.pack("<I", 0) + b"\x00" + bson_ping()  # flagBits=0, section kind 0
    header = struct.pack("<iiii", 16 + len(payload), request_id, 0, OP_MSG)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(header + payload)
        length, _req, response_to, opcode = struct.unpack("<iiii", recv_exact(sock, 16))
        body = recv_exact(sock, length - 16)
    if opcode != OP_MSG or response_to != request_id:
        raise ValueError(f"unexpected reply: opcode={opcode} responseTo={response_to}")
    if body[4] != 0:
        raise ValueError(f"unexpected first section kind {body[4]}")
    return bson_top_level(body[5:])


def parse_target(target: str) -> tuple[str, int]:
    if "://" not in target:
        target = "mongodb://" + target
    parts = urlsplit(target)
    host = parts.hostname or "127.0.0.1"
    return host, parts.port or 27017


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "target", nargs="?", default=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
    )
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    host, port = parse_target(args.target)
    try:
        reply = ping(host, port, args.timeout)
    except (OSError, ValueError, struct.error) as exc:
        if not args.quiet:
            print(f"ping {host}:{port} failed: {exc}", file=sys.stderr)
        return 1
    if reply.get("ok") in (1, 1.0, True):
        if not args.quiet:
            print(f"ping {host}:{port} ok")
        return 0
    if not args.quiet:
        print(f"ping {host}:{port} not ok: {reply}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
