"""API keys: random tokens shown once, stored only as SHA-256 hashes, each with a role.

A token is `jxp_` followed by 43 URL-safe characters (256 random bits), so a plain SHA-256 is the right hash:
there is nothing to guess, and lookups stay a single indexed equality. The first 8 characters are kept in
clear (`prefix`) so that a listing can say which token is which without revealing it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

Role = Literal["reader", "editor", "admin"]
ROLES: tuple[Role, ...] = ("reader", "editor", "admin")  # each role may do what the ones before it may
TOKEN_PREFIX = "jxp_"
SHOWN_PREFIX = 8


class KeyProblem(ValueError):
    """A key cannot be added or revoked as asked."""


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never the token, only its first characters."""

    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class Caller:
    """Who is making an authenticated request."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        """Whether the caller's role includes `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_key(engine: Engine, name: str, role: Role) -> str:
    """Create a key and return its token (the only time it is ever available)."""
    if role not in ROLES:
        raise KeyProblem(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if not name.strip():
        raise KeyProblem("a key needs a name (who or what uses it)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO api_keys (name, role, prefix, key_hash) VALUES (:n, :r, :p, :h)"),
                {"n": name.strip(), "r": role, "p": token[:SHOWN_PREFIX], "h": hash_token(token)},
            )
    except IntegrityError:
        raise KeyProblem(f"a key named {name!r} already exists; revoke it or choose another name") from None
    return token


def list_keys(engine: Engine) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, role, prefix, created_at, revoked_at, last_used_at FROM api_keys ORDER BY id")
        )
        return [ApiKey(*row) for row in rows]


def revoke_key(engine: Engine, name: str) -> None:
    """Revoke a key by name; it stops working at once and stays listed."""
    with engine.begin() as conn:
        done = conn.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE name = :n AND revoked_at IS NULL"), {"n": name}
        ).rowcount
    if not done:
        raise KeyProblem(f"no active key named {name!r}")


async def caller_of(conn: AsyncConnection, token: str) -> Caller | None:
    """The active key a token belongs to (and note its use), or None."""
    row = (
        await conn.execute(
            text(
                "UPDATE api_keys SET last_used_at = now() WHERE key_hash = :h AND revoked_at IS NULL"
                " RETURNING name, role"
            ),
            {"h": hash_token(token)},
        )
    ).first()
    return Caller(row.name, row.role) if row else None
