"""Decentralized NATS auth for tests: an operator, an account and a user, their JWTs signed
with nkeys, a server config trusting the operator, and the user's .creds file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import nkeys

UNLIMITED = {"subs": -1, "data": -1, "payload": -1}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _keypair(prefix: int) -> tuple[bytes, Any, str]:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    pair = nkeys.from_seed(bytearray(seed))
    return seed, pair, pair.public_key.decode()


def _jwt(issuer: Any, claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = {**claims, "iat": int(time.time()), "jti": ""}
    digest = hashlib.new("sha512_256", json.dumps(claims, separators=(",", ":")).encode())
    claims["jti"] = base64.b32encode(digest.digest()).decode().rstrip("=")
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{body}.{_b64(issuer.sign(f'{header}.{body}'.encode()))}"


def write_operator_setup(folder: Path) -> tuple[Path, Path]:
    """(server config, user .creds file) for a server that trusts a fresh operator."""
    _, operator, operator_pub = _keypair(nkeys.PREFIX_BYTE_OPERATOR)
    _, account, account_pub = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    _, _, system_pub = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)  # JetStream needs one
    user_seed, _, user_pub = _keypair(nkeys.PREFIX_BYTE_USER)
    operator_jwt = _jwt(
        operator,
        {"iss": operator_pub, "sub": operator_pub, "name": "op",
         "nats": {"type": "operator", "version": 2}},
    )  # fmt: skip
    limits = {**UNLIMITED, "imports": -1, "exports": -1, "wildcards": True, "conn": -1}
    accounts = {
        pub: _jwt(operator, {"iss": operator_pub, "sub": pub, "name": name, "nats": {
            "limits": {**limits, "leaf": -1}, "type": "account", "version": 2}})
        for pub, name in ((account_pub, "cortex"), (system_pub, "SYS"))
    }  # fmt: skip
    user_jwt = _jwt(
        account,
        {"iss": account_pub, "sub": user_pub, "name": "service",
         "nats": {"pub": {}, "sub": {}, **UNLIMITED, "type": "user", "version": 2}},
    )  # fmt: skip
    (folder / "operator.jwt").write_text(operator_jwt)
    config = folder / "operator.conf"
    preload = "\n".join(f'  {pub}: "{token}"' for pub, token in accounts.items())
    config.write_text(
        f'operator: "{folder / "operator.jwt"}"\nsystem_account: {system_pub}\n'
        f"resolver: MEMORY\nresolver_preload: {{\n{preload}\n}}\n"
    )
    creds = folder / "service.creds"
    creds.write_text(
        f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user_seed.decode()}\n------END USER NKEY SEED------\n"
    )
    return config, creds
