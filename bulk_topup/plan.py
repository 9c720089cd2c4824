"""From a sheet on disk to validated orders with refs: the sheet, the catalog, the rules.

The catalog parts loaded are only those the sheet needs (no gift calls for a mobile-only sheet).
"""

from __future__ import annotations

from pathlib import Path

from .catalog import load_catalog
from .client import OneClickClient
from .orders import Validation, infer_kind
from .sheet import Sheet, read_sheet
from .validation import build_orders


def needed_parts(sheet: Sheet) -> tuple[tuple[str, ...], set[str]]:
    """Which catalog parts the sheet's rows need, and which gift products' types."""
    parts: list[str] = []
    gifts: set[str] = set()
    kinds: set[str] = set()
    for row in sheet.rows:
        kind, _ = infer_kind(row.cells)
        kinds.add(kind or "")
        if kind == "giftcard" and row.cells.get("product_id", "").strip():
            gifts.add(row.cells["product_id"].strip())
    if "mobile" in kinds:
        parts.append("plans")
    if "internet" in kinds:
        parts.append("internet")
    if "giftcard" in kinds:
        parts.append("gift")
    return tuple(parts), gifts


async def validate_sheet(
    path: str | Path,
    *,
    batch: str,
    client: OneClickClient | None,
    state_dir: Path,
    api_url: str,
    sheet_name: str | None = None,
    allow_duplicates: bool = False,
) -> tuple[Sheet, Validation]:
    """Read and validate a sheet. Raises SheetError for an unreadable file, AuthError for a bad
    key; row problems are data in the returned Validation."""
    sheet = read_sheet(path, sheet_name)
    parts, gifts = needed_parts(sheet)
    catalog = await load_catalog(client, state_dir, api_url, parts=parts, gift_products=gifts)
    return sheet, build_orders(sheet, batch, catalog, allow_duplicates=allow_duplicates)
