#!/usr/bin/env python3
"""Apple Remote Desktop authentication (RFB security type 30), computed
independently of wsvnc, for its tests (tests/ard_vectors.rs).

Reads one JSON object per line on stdin:
    {"g": 2, "p": HEX, "y": HEX, "x": HEX, "pad": HEX(128 bytes),
     "user": HEX, "pw": HEX}
(generator, prime modulus, server public value, client private key,
padding, user name, password) and prints for each the client's message in
hex: the 128 bytes of AES-128-ECB encrypted credentials, then the client's
public value g^x mod p, both as rfbproto "Diffie-Hellman Authentication"
describes: key = MD5(Y^x mod p as key-size big-endian bytes); each
credential cut to 63 bytes, NUL-terminated, the rest of its 64 bytes the
padding.

Python's own pow() and hashlib.md5, and AES from the `cryptography`
package (Debian: python3-cryptography).
"""
import hashlib
import json
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def answer(c):
    n = len(c["p"]) // 2
    p, y, x = (int(c[k], 16) for k in ("p", "y", "x"))
    public = pow(c["g"], x, p).to_bytes(n, "big")
    secret = pow(y, x, p).to_bytes(n, "big")
    key = hashlib.md5(secret).digest()
    creds = bytearray(bytes.fromhex(c["pad"]))
    assert len(creds) == 128
    for offset, field in ((0, c["user"]), (64, c["pw"])):
        value = bytes.fromhex(field)[:63]
        creds[offset:offset + len(value)] = value
        creds[offset + len(value)] = 0
    aes = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return (aes.update(bytes(creds)) + aes.finalize() + public).hex()


for line in sys.stdin:
    if line.strip():
        print(answer(json.loads(line)), flush=True)
