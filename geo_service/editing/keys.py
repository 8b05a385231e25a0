"""API keys: random tokens shown once, stored only as SHA-256 hashes, each with a role.

A token is `jxp_` followed by 43 URL-safe characters (256 random bits), so a plain SHA-256 is the right hash:
there is nothing to guess, and lookups stay a single indexed equality. The first 8 characters are kept in
clear (`prefix`) so that a listing can say which token is which without revealing it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Sequence
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
    expires_at: datetime | None
    layers: list[str] | None


@dataclass(frozen=True)
class Caller:
    """Who is making an authenticated request, and the layers the key may write (None: every one)."""

    name: str
    role: Role
    layers: tuple[str, ...] | None = None

    def may(self, role: Role) -> bool:
        """Whether the caller's role includes `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def may_write(self, layer_id: str) -> bool:
        """Whether the key may write to the layer."""
        return self.layers is None or layer_id in self.layers


@dataclass(frozen=True)
class PresentedKey:
    """The stored key a token belongs to, as found when it is presented (active or not)."""

    caller: Caller
    revoked_at: datetime | None
    expires_at: datetime | None
    checked_at: datetime

    @property
    def expired(self) -> bool:
        """Whether the key's time has passed."""
        return self.expires_at is not None and self.expires_at <= self.checked_at


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def checked_layers(layers: Sequence[str], editable: Collection[str]) -> list[str]:
    """The layers a key is to be limited to, each one an editable layer of the catalogue."""
    chosen = list(dict.fromkeys(name.strip() for name in layers if name.strip()))
    if not chosen:
        raise KeyProblem("--layers names no layer; leave it out to allow every editable layer")
    unknown = [name for name in chosen if name not in editable]
    if unknown:
        raise KeyProblem(
            f"not an editable layer: {', '.join(unknown)}; editable layers: {', '.join(sorted(editable))}"
        )
    return chosen


def add_key(
    engine: Engine,
    name: str,
    role: Role,
    *,
    expires_at: datetime | None = None,
    layers: Sequence[str] | None = None,
) -> str:
    """Create a key and return its token (the only time it is ever available). `expires_at`: when it stops
    working; `layers`: the only layers it may write (checked against the catalogue by the caller)."""
    if role not in ROLES:
        raise KeyProblem(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if not name.strip():
        raise KeyProblem("a key needs a name (who or what uses it)")
    if layers is not None and role == "reader":
        raise KeyProblem("a reader key writes nothing: --layers is for editor and admin keys")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            if expires_at is not None and expires_at <= conn.execute(text("SELECT now()")).scalar_one():
                raise KeyProblem(f"the expiry {expires_at.isoformat(timespec='minutes')} has already passed")
            conn.execute(
                text(
                    "INSERT INTO api_keys (name, role, prefix, key_hash, expires_at, layers)"
                    " VALUES (:n, :r, :p, :h, :e, :l)"
                ),
                {
                    "n": name.strip(),
                    "r": role,
                    "p": token[:SHOWN_PREFIX],
                    "h": hash_token(token),
                    "e": expires_at,
                    "l": list(layers) if layers is not None else None,
                },
            )
    except IntegrityError:
        raise KeyProblem(f"a key named {name!r} already exists; revoke it or choose another name") from None
    return token


def list_keys(engine: Engine) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT name, role, prefix, created_at, revoked_at, last_used_at, expires_at, layers"
                " FROM api_keys ORDER BY id"
            )
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


# One statement per authenticated request: the key, and its use noted at most once a minute (a row write per
# request would bloat the table and cost a WAL record per read of /auth/key or per write).
PRESENTED_KEY = """
    WITH presented AS (
        SELECT id, name, role, layers, revoked_at, expires_at, now() AS checked_at
          FROM api_keys WHERE key_hash = :h
    ), used AS (
        UPDATE api_keys k SET last_used_at = p.checked_at FROM presented p
         WHERE k.id = p.id AND p.revoked_at IS NULL AND (p.expires_at IS NULL OR p.expires_at > p.checked_at)
           AND (k.last_used_at IS NULL OR k.last_used_at < p.checked_at - interval '1 minute')
    )
    SELECT name, role, layers, revoked_at, expires_at, checked_at FROM presented
"""


async def presented_key(conn: AsyncConnection, token: str) -> PresentedKey | None:
    """The stored key a token belongs to (its use noted when it is active), or None for an unknown token."""
    row = (await conn.execute(text(PRESENTED_KEY), {"h": hash_token(token)})).first()
    if row is None:
        return None
    layers = tuple(row.layers) if row.layers is not None else None
    return PresentedKey(Caller(row.name, row.role, layers), row.revoked_at, row.expires_at, row.checked_at)
