"""The catalog cache: fresh parts from disk, stale ones when the API is down, and the notes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bulk_topup.catalog import load_catalog
from bulk_topup.client import OneClickClient, RetryPolicy
from bulk_topup.emulator import SANDBOX_KEY
from bulk_topup.errors import AuthError
from bulk_topup.validation import build_orders

from .conftest import BASE, no_wait
from .runkit import mobile, sheet_of

pytestmark = pytest.mark.anyio


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def offline_client() -> OneClickClient:
    return OneClickClient(BASE, SANDBOX_KEY, transport=httpx.MockTransport(refused),
                          retry=RetryPolicy(attempts=2, sleep=no_wait))  # fmt: skip


async def test_fresh_cache_makes_no_call(client, world, tmp_path: Path) -> None:
    await load_catalog(client, tmp_path, BASE, parts=("plans",))
    calls = world.stats()["total_calls"]
    again = await load_catalog(client, tmp_path, BASE, parts=("plans",))
    assert world.stats()["total_calls"] == calls
    assert "PREPAID_DJEZZY" in again.plans and not again.stale and not again.missing


async def test_expired_cache_is_refreshed(client, world, tmp_path: Path) -> None:
    await load_catalog(client, tmp_path, BASE, parts=("internet",))
    calls = world.stats()["total_calls"]
    await load_catalog(client, tmp_path, BASE, parts=("internet",), now=time.time() + 11 * 60)
    assert world.stats()["total_calls"] > calls


async def test_api_down_uses_the_cache_and_says_how_old(client, tmp_path: Path) -> None:
    await load_catalog(client, tmp_path, BASE, parts=("plans",))
    async with offline_client() as offline:
        catalog = await load_catalog(offline, tmp_path, BASE, parts=("plans",),
                                     now=time.time() + 25 * 3600)  # fmt: skip
    assert catalog.stale == ["plans"] and "PREPAID_DJEZZY" in catalog.plans
    result = build_orders(sheet_of(mobile("0661234567")), "b", catalog)
    assert result.catalog_notes == [
        "the mobile plans come from a cache 25 h old (API unreachable)"]  # fmt: skip
    assert result.orders[0].valid and result.orders[0].cost == 480


async def test_api_down_and_no_cache_names_the_checks_skipped(tmp_path: Path) -> None:
    async with offline_client() as offline:
        catalog = await load_catalog(offline, tmp_path, BASE, parts=("plans",))
    assert catalog.missing == ["plans"]
    assert offline.calls == 2  # one part tried; gift types were not even attempted
    result = build_orders(sheet_of(mobile("0661234567", 700)), "b", catalog)
    assert result.catalog_notes == [
        "the mobile plans could not be loaded (API unreachable, no cache): plan codes, amounts "
        "and operators were NOT checked"]  # fmt: skip
    assert result.orders[0].face_value == 700 and result.orders[0].cost == 700


async def test_a_wrong_key_is_not_hidden_by_the_cache(app, client, tmp_path: Path) -> None:
    await load_catalog(client, tmp_path, BASE, parts=("plans",))
    from bulk_topup.emulator import EmulatorTransport

    async with OneClickClient(BASE, "wrong", transport=EmulatorTransport(app),
                              retry=RetryPolicy(sleep=no_wait)) as bad:  # fmt: skip
        with pytest.raises(AuthError):
            await load_catalog(bad, tmp_path, BASE, parts=("plans",), refresh=True)
