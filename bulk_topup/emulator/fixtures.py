"""Catalog fixtures and sandbox scenarios of the emulator, as close to the documentation as it goes.

Plan codes, names, cost factors and ranges are the documented ones where the docs give them
(PREPAID_DJEZZY 0.9925 100-10000, PREPAID_MOBILIS 0.96 40-3999, PIXX_500 0.97, GROS_MOBILIS with
no cost, the GETMENU codes); the rest are plausible fill-ins.
"""

from __future__ import annotations

from typing import Any

DYNAMIC_PLANS: list[dict[str, Any]] = [
    {
        "code": "PREPAID_DJEZZY",
        "name": "📱 PREPAID | عادي",
        "operator": "Djezzy",
        "cost": 0.9925,
        "isEnabled": True,
        "min_amount": 100,
        "max_amount": 10000,
    },
    {
        "code": "FACTURE_DJEZZY",
        "name": "📋 FACTURE | فاتورة",
        "operator": "Djezzy",
        "cost": 0.99,
        "isEnabled": True,
        "min_amount": 100,
        "max_amount": 50000,
    },
    {
        "code": "PREPAID_MOBILIS",
        "name": "📱 PREPAID | عادي",
        "operator": "Mobilis",
        "cost": 0.96,
        "isEnabled": True,
        "min_amount": 40,
        "max_amount": 3999,
    },
    {
        "code": "FACTURE_MOBILIS",
        "name": "📋 FACTURE | فاتورة",
        "operator": "Mobilis",
        "cost": 0.98,
        "isEnabled": True,
        "min_amount": 100,
        "max_amount": 50000,
    },
    {
        "code": "GROS_MOBILIS",
        "name": "📱 GROS MOBILIS | جملة",
        "operator": "GMobilis",
        "isEnabled": True,
        "min_amount": 5000,
        "max_amount": 300000,
    },
    {
        "code": "PREPAID_OOREDOO",
        "name": "📱 PREPAID | عادي",
        "operator": "Ooredoo",
        "cost": 0.97,
        "isEnabled": True,
        "min_amount": 50,
        "max_amount": 5000,
    },
    # Disabled, as a plan under maintenance shows itself.
    {
        "code": "FACTURE_OOREDOO",
        "name": "📋 FACTURE | فاتورة",
        "operator": "Ooredoo",
        "cost": 0.98,
        "isEnabled": False,
        "min_amount": 100,
        "max_amount": 30000,
    },
    {
        "code": "GETMENU_Mobilis",
        "name": "📋 GET MENU | عروض الرقم",
        "operator": "Mobilis",
        "cost": 1,
        "isEnabled": True,
        "min_amount": 50,
        "max_amount": 5000,
    },
    {
        "code": "GETMENU_Djezzy",
        "name": "📋 GET MENU | عروض الرقم",
        "operator": "Djezzy",
        "cost": 1,
        "isEnabled": True,
        "min_amount": 50,
        "max_amount": 5000,
    },
    {
        "code": "GETMENU_Ooredoo",
        "name": "📋 GET MENU | عروض الرقم",
        "operator": "Ooredoo",
        "cost": 1,
        "isEnabled": True,
        "min_amount": 50,
        "max_amount": 5000,
    },
]

FIXED_PLANS: list[dict[str, Any]] = [
    {
        "code": "PIXX_500",
        "name": "Pixx 500 DA",
        "operator": "Pixx",
        "cost": 0.97,
        "isEnabled": True,
        "amount": 500,
    },
    {
        "code": "PIXX_1000",
        "name": "Pixx 1000 DA",
        "operator": "Pixx",
        "cost": 0.97,
        "isEnabled": True,
        "amount": 1000,
    },
    {
        "code": "MIX500_MOBILIS",
        "name": "📱🌐 AUTO | MIX 500",
        "operator": "Mobilis",
        "cost": 0.98,
        "isEnabled": True,
        "amount": 500,
    },
    {
        "code": "MIX1000_OOREDOO",
        "name": "📱🌐 AUTO | MIX 1000",
        "operator": "Ooredoo",
        "cost": 0.98,
        "isEnabled": True,
        "amount": 1000,
    },
    {
        "code": "DATA_1GB_DJEZZY",
        "name": "🌐 Data Pack 1GB",
        "operator": "Djezzy",
        "cost": 0.985,
        "isEnabled": True,
        "amount": 300,
    },
    {
        "code": "SPECIAL_2000_DJEZZY",
        "name": "⭐ Special 2000",
        "operator": "Djezzy",
        "cost": 0.985,
        "isEnabled": True,
        "amount": 2000,
    },
]

INTERNET_PRODUCTS: dict[str, list[dict[str, Any]]] = {
    "ADSL": [
        {"value": 500, "cost": 490, "available": True},
        {"value": 1000, "cost": 980, "available": True},
        {"value": 2000, "cost": 1960, "available": True},
        {"value": 5000, "cost": 4900, "available": False},
    ],
    "4G": [
        {"value": 500, "cost": 490, "available": True},
        {"value": 1000, "cost": 980, "available": True},
        {"value": 1500, "cost": 1470, "available": True},
        {"value": 2500, "cost": 2450, "available": True},
        {"value": 3500, "cost": 3430, "available": False},
    ],
}

GIFT_CATEGORIES: list[dict[str, Any]] = [
    {
        "name": "Gaming Cards",
        "products": [
            {
                "id": "507f1f77bcf86cd799439011",
                "title": "PlayStation Network",
                "enabled": True,
                "region": "dz",
            },
            {"id": "507f1f77bcf86cd799439012", "title": "Google Play Gift Card", "enabled": True},
            {"id": "507f1f77bcf86cd799439013", "title": "Steam Wallet", "enabled": True},
            {"id": "507f1f77bcf86cd799439015", "title": "Xbox Live", "enabled": False},
        ],
    },
    {
        "name": "Streaming Services",
        "products": [
            {"id": "507f1f77bcf86cd799439014", "title": "Netflix Gift Card", "enabled": True},
            {"id": "507f1f77bcf86cd799439016", "title": "Spotify Premium", "enabled": True},
        ],
    },
]

GIFT_TYPES: dict[str, list[dict[str, Any]]] = {
    "507f1f77bcf86cd799439011": [
        {"id": "type_001", "name": "PSN 500 DA", "price": 490, "quantity": 150},
        {"id": "type_002", "name": "PSN 1000 DA", "price": 980, "quantity": 87},
        {"id": "type_003", "name": "PSN 2000 DA", "price": 1960, "quantity": 0},
    ],
    "507f1f77bcf86cd799439012": [
        {"id": "gp_500", "name": "Google Play 500 DA", "price": 495, "quantity": 40},
        {"id": "gp_1000", "name": "Google Play 1000 DA", "price": 990, "quantity": 25},
    ],
    "507f1f77bcf86cd799439013": [
        {"id": "steam_20usd", "name": "Steam 20 USD", "price": 4300, "quantity": 12},
    ],
    "507f1f77bcf86cd799439015": [
        {"id": "xbox_10usd", "name": "Xbox 10 USD", "price": 2200, "quantity": 5},
    ],
    "507f1f77bcf86cd799439014": [
        {"id": "nf_1m", "name": "Netflix 1 month", "price": 1600, "quantity": 30},
        {"id": "nf_3m", "name": "Netflix 3 months", "price": 4700, "quantity": 8},
    ],
    "507f1f77bcf86cd799439016": [
        {"id": "sp_1m", "name": "Spotify 1 month", "price": 850, "quantity": 60},
    ],
}

#: Sandbox gift types, accepted on every enabled product with a SANDBOX key.
SANDBOX_GIFT_TYPES = {
    "TEST_REFUND": {"name": "Sandbox: ends REFUNDED", "price": 100, "quantity": 999},
    "TEST_PARTIAL": {"name": "Sandbox: ends PARTIALLY_FILLED", "price": 100, "quantity": 999},
}

# --- sandbox scenarios ---------------------------------------------------------------------------

MOBILE_PENDING_S = 5.0  # PENDING (5s) -> HANDLING (15s) -> final, as the quickstart states
MOBILE_SETTLE_S = 20.0
UNKNOWN_RESOLVE_S = 2 * 3600.0  # support flips UNKNOWN_ERROR within 1-12 h
INTERNET_SETTLE_S = 10.0
QUEUED_RESOLVE_S = 24 * 3600.0  # QUEUED lines are served within 12-48 h
GIFT_SETTLE_S = 8.0

REFUND_MESSAGE = "فشلت عملية التعبئة، تم إرجاع المبلغ إلى رصيدك"
SUGGEST_MESSAGE = "هذا رقم الهاتف لا يقبل العرض المرسل، الرجاء إرسال أحد العروض التالية"
UNKNOWN_MESSAGE = "حالة العملية غير مؤكدة، جارٍ التحقق منها"
GETMENU_MESSAGE = "العروض المتاحة لهذا الرقم"

#: MSSIDN -> scenario. The first three are the documented sandbox numbers; 0600000004 is ours.
MOBILE_SCENARIOS = {
    "0600000001": "refund",
    "0600000002": "suggest",
    "0600000003": "unknown_then_fulfilled",
    "0600000004": "unknown_then_refunded",
}

#: Internet numbers with a forced outcome (emulator-only; the docs list none).
INTERNET_SCENARIOS = {
    "000000001": "refund",
    "000000002": "queued",
    "213000000001": "refund",
    "213000000002": "queued",
}

#: An ADSL line the operator does not know: check-number answers ERR_PHONE (emulator-only).
UNKNOWN_ADSL_LINE = "000000009"

#: What GETMENU answers per operator, as suggested_offers.
GETMENU_OFFERS = {
    "Mobilis": [
        ("📱 PREPAID | عادي", "PREPAID_MOBILIS", 1000),
        ("📱🌐 AUTO | MIX 500", "MIX500_MOBILIS", 500),
    ],
    "Djezzy": [
        ("📱 PREPAID | عادي", "PREPAID_DJEZZY", 1000),
        ("🌐 Data Pack 1GB", "DATA_1GB_DJEZZY", 300),
    ],
    "Ooredoo": [
        ("📱 PREPAID | عادي", "PREPAID_OOREDOO", 1000),
        ("📱🌐 AUTO | MIX 1000", "MIX1000_OOREDOO", 1000),
    ],
}
