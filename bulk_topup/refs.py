"""Deterministic refs: the same order in the same batch always gets the same ref.

`ref = <batch slug>-<digest>`. The digest is base32 of sha256 over a canonical JSON form with a
version prefix, of (batch key, kind, normalised target, product, amount, occurrence number among
identical rows). So a row keeps its ref when other rows are inserted, deleted or reordered, and a
new batch key makes fresh refs for the same sheet. Golden tests pin the values: changing the
canonical form would make a resumed batch send everything again under new refs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from typing import Any

REF_FORMAT = "bulk_topup.ref.v1"
PAYLOAD_FORMAT = "bulk_topup.payload.v1"
MAX_REF = 40
SLUG_MAX = 16
USER_REF_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@functools.lru_cache(maxsize=64)
def batch_slug(batch: str) -> str:
    """`Payroll 2026/11` -> `payroll-2026-11`, at most 16 characters, never empty."""
    slug = re.sub(r"[^a-z0-9-]+", "-", batch.lower())
    slug = re.sub(r"-{2,}", "-", slug).strip("-")[:SLUG_MAX].strip("-")
    return slug or "batch"


def make_ref(
    batch: str, kind: str, target: str, product: str, amount: int | None, occurrence: int
) -> str:
    """The ref of one order; at most 40 characters of `[a-z0-9-]`."""
    form = [REF_FORMAT, batch, kind, target, product, amount, occurrence]
    digest = hashlib.sha256(canonical_json(form)).digest()
    text = base64.b32encode(digest).decode("ascii").rstrip("=").lower()
    slug = batch_slug(batch)
    return f"{slug}-{text[: MAX_REF - len(slug) - 1]}"


def payload_hash(payload: dict[str, Any]) -> str:
    """A stable hash of what is sent for a row, to catch a changed row under a sent ref."""
    return hashlib.sha256(canonical_json([PAYLOAD_FORMAT, payload])).hexdigest()
