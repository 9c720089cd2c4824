"""What can be bought: mobile plans, internet products, gift cards and their types and stock.

Fetched from the API and cached in the state dir with the time of each part: plans for a day,
internet products for 10 minutes (stock moves), the gift catalog for a day and gift types (stock)
for 10 minutes. Without the API, the cache serves at any age and says how old it is; with neither,
`Catalog.missing` names what could not be loaded, so validation can say which checks it skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .client import OneClickClient
from .errors import ApiError, AuthError, OutcomeUnknown, RequestNotSent
from .models import GiftProduct, GiftType, InternetProduct, MobilePlan
from .statedir import prepare_state_dir, private_folder

MAX_AGE = {"plans": 24 * 3600, "internet": 600, "gift": 24 * 3600, "gift_types": 600}
INTERNET_TYPES = ("ADSL", "4G")


@dataclass
class Catalog:
    plans: dict[str, MobilePlan] = field(default_factory=dict)
    internet: dict[str, list[InternetProduct]] = field(default_factory=dict)
    gifts: dict[str, GiftProduct] = field(default_factory=dict)
    gift_types: dict[str, list[GiftType]] = field(default_factory=dict)
    fetched_at: dict[str, float] = field(default_factory=dict)  # part -> unix time
    missing: list[str] = field(default_factory=list)  # parts neither the API nor a cache had
    stale: list[str] = field(default_factory=list)  # parts served from an expired cache
    loaded_at: float = field(default_factory=time.time)  # unix time of this load

    def age(self, part: str) -> float | None:
        """How old `part` was when this catalog was loaded, in seconds."""
        at = self.fetched_at.get(part)
        return None if at is None else self.loaded_at - at

    def internet_product(self, kind: str, value: int) -> InternetProduct | None:
        return next((p for p in self.internet.get(kind, []) if p.value == value), None)

    def gift_type(self, product_id: str, type_id: str) -> GiftType | None:
        return next((t for t in self.gift_types.get(product_id, []) if t.id == type_id), None)


def _cache_path(state_dir: Path, api_url: str) -> Path:
    tag = hashlib.sha256(api_url.encode()).hexdigest()[:12]
    return state_dir / "cache" / f"catalog-{tag}.json"


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(state_dir: Path, path: Path, data: dict[str, Any]) -> None:
    """Keep what was fetched for next time. A cache that cannot be written (a full disk) costs
    only the next command's API calls: it is not an error."""
    prepare_state_dir(state_dir)
    private_folder(path.parent)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _decode(part: str, items: Any) -> Any:
    if part == "plans":
        return {p["code"]: MobilePlan(**p) for p in items}
    if part == "internet":
        return {k: [InternetProduct(**p) for p in v] for k, v in items.items()}
    if part == "gift":
        return {p["id"]: GiftProduct(**p) for p in items}
    return {k: [GiftType(**t) for t in v] for k, v in items.items()}


def _encode(part: str, value: Any) -> Any:
    if part == "internet":
        return {k: [asdict(p) for p in v] for k, v in value.items()}
    if part == "gift_types":
        return {k: [asdict(t) for t in v] for k, v in value.items()}
    return [asdict(v) for v in value.values()]


async def load_catalog(
    client: OneClickClient | None,
    state_dir: Path,
    api_url: str,
    *,
    parts: tuple[str, ...] = ("plans", "internet", "gift"),
    gift_products: set[str] | None = None,
    refresh: bool = False,
    now: float | None = None,
) -> Catalog:
    """Fresh parts from the cache, the rest from the API, the API's failures from any cache.

    `gift_products` names the products whose types (and stock) are needed; None means all.
    Authentication errors are raised: a wrong key must stop everything, not fall back.
    """
    now = now or time.time()
    path = _cache_path(state_dir, api_url)
    cache = _load_cache(path)
    catalog = Catalog(loaded_at=now)
    changed = False
    wanted = list(parts) + (["gift_types"] if "gift" in parts else [])
    for part in wanted:
        entry = cache.get(part) or {}
        fresh = entry and not refresh and now - entry.get("at", 0) < MAX_AGE[part]
        if part == "gift_types" and fresh:
            need = gift_products if gift_products is not None else set(catalog.gifts)
            fresh = need <= set(entry.get("items", {}))
        if fresh:
            setattr(catalog, _attr(part), _decode(part, entry["items"]))
            catalog.fetched_at[part] = entry["at"]
            continue
        try:
            if client is None:
                raise ApiError("offline")
            value = await _fetch(client, part, catalog, gift_products)
        except AuthError:
            raise
        except ApiError as e:
            if isinstance(e, RequestNotSent | OutcomeUnknown):
                client = None  # unreachable: the other parts come from the cache, without waiting
            if entry:
                setattr(catalog, _attr(part), _decode(part, entry["items"]))
                catalog.fetched_at[part] = entry["at"]
                catalog.stale.append(part)
            else:
                catalog.missing.append(part)
            continue
        setattr(catalog, _attr(part), value)
        catalog.fetched_at[part] = now
        cache[part] = {"at": now, "items": _encode(part, value)}
        changed = True
    if changed:
        _save_cache(state_dir, path, cache)
    return catalog


def _attr(part: str) -> str:
    return {"plans": "plans", "internet": "internet", "gift": "gifts", "gift_types": "gift_types"}[
        part
    ]


async def _fetch(
    client: OneClickClient, part: str, catalog: Catalog, gift_products: set[str] | None
) -> Any:
    if part == "plans":
        return {p.code: p for p in await client.mobile_plans()}
    if part == "internet":
        return {kind: await client.internet_products(kind) for kind in INTERNET_TYPES}
    if part == "gift":
        return {p.id: p for p in await client.gift_catalog()}
    ids = gift_products if gift_products is not None else set(catalog.gifts)
    types: dict[str, list[GiftType]] = {}
    for pid in sorted(ids):
        if catalog.gifts and pid not in catalog.gifts:
            continue  # unknown products are reported by validation; no call for them
        try:
            types[pid] = await client.gift_check_product(pid)
        except ApiError as e:
            if getattr(e, "code", None) != "NOT_FOUND":
                raise
    return types
