"""Normalisation and validation rules, with the exact messages a clerk reads; refs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulk_topup.catalog import Catalog, load_catalog
from bulk_topup.normalise import normalise_internet, normalise_mobile, parse_dzd
from bulk_topup.refs import batch_slug, make_ref, payload_hash
from bulk_topup.validation import build_orders

from .conftest import BASE
from .runkit import sheet_of


@pytest.fixture
async def catalog(client, tmp_path: Path) -> Catalog:
    return await load_catalog(
        client,
        tmp_path,
        BASE,
        gift_products={"507f1f77bcf86cd799439011", "507f1f77bcf86cd799439015"},
    )


def problems(catalog: Catalog, *rows: dict[str, str], **kw: bool) -> list[str]:
    result = build_orders(sheet_of(*rows), "b", catalog, **kw)
    return [f"{p.severity}: {p}" for o in result.orders for p in o.errors + o.warnings]


def mobile(phone: str = "0661234567", plan: str = "PREPAID_MOBILIS", amount: str = "500"):
    return {"phone": phone, "plan_code": plan, "amount": amount}


# --- normalisers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "number", "notes"),
    [
        ("0778037340", "0778037340", []),
        ("778037340", "0778037340", ["leading 0 restored (lost by Excel)"]),
        (
            "7.78037340E+08",
            "0778037340",
            [
                "written in scientific notation (7.78037340E+08)",
                "leading 0 restored (lost by Excel)",
            ],
        ),
        (
            "778037340.0",
            "0778037340",
            ["written as a decimal number (778037340.0)", "leading 0 restored (lost by Excel)"],
        ),
        ("+213 778 03 73 40", "0778037340", ["spaces or separators removed", "+213 replaced by 0"]),
        ("+213778037340", "0778037340", ["+213 replaced by 0"]),
        ("00213778037340", "0778037340", ["00213 replaced by 0"]),
        ("213778037340", "0778037340", ["213 replaced by 0"]),
        ("0778.03.73.40", "0778037340", ["spaces or separators removed"]),
        ("0778-03-73-40", "0778037340", ["spaces or separators removed"]),
        ("0778\u00a0037340", "0778037340", ["spaces or separators removed"]),
    ],
)
def test_mobile_repairs(raw: str, number: str, notes: list[str]) -> None:
    assert normalise_mobile(raw) == (number, notes, None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "is empty; write the mobile number (0XXXXXXXXX)"),
        ("77803734", '"77803734" has 8 digits; an Algerian mobile number has 10 (0XXXXXXXXX)'),
        (
            "0378037340",
            '"0378037340" is not a mobile number: it must start with 05, 06 or 07 (0XXXXXXXXX)',
        ),
        (
            "07780373401",
            '"07780373401" has 11 digits; an Algerian mobile number has 10 (0XXXXXXXXX)',
        ),
        ("07780ABC40", '"07780ABC40" contains characters that are not digits'),
        ("+33612345678", '"+33612345678" is not an Algerian number (+213...)'),
        ("378037340", '"378037340" has 9 digits; an Algerian mobile number has 10 (0XXXXXXXXX)'),
    ],
)
def test_mobile_rejections(raw: str, message: str) -> None:
    assert normalise_mobile(raw)[2] == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "7.780373405E+08",
            '"7.780373405E+08" is a number in scientific notation that is not a whole number: '
            "Excel changed it; format the column as text and type the number again",
        ),
        (
            "7.78037E+08",
            '"7.78037E+08" shows 6 of the number\'s 9 digits: Excel hid the others; format the '
            "column as text and type the number again",
        ),
        (
            "7.7803734E+08",
            '"7.7803734E+08" shows 8 of the number\'s 9 digits: Excel hid the others; format '
            "the column as text and type the number again",
        ),
    ],
)
def test_scientific_notation_is_never_truncated(raw: str, message: str) -> None:
    """Only an exact notation is read: a fraction or a digit Excel hid is refused, for a mobile
    number and for a 4G line alike (never silently cut to 0778037340)."""
    assert normalise_mobile(raw) == (raw, [], message)
    assert normalise_internet("4G", raw)[2] == message


@pytest.mark.parametrize("raw", ["3636260", "363626", "1", "0363626"])
def test_adsl_numbers_shorter_than_8_digits_are_not_padded(raw: str) -> None:
    number, repairs, error = normalise_internet("ADSL", raw)
    assert (number, repairs) == (raw, [])
    assert error == (
        f'"{raw}" is not an ADSL line number: 9 digits starting with 0 (0XXXXXXXX), area code '
        f"included"
    )


def test_an_adsl_number_of_8_digits_lost_its_zero_and_says_so() -> None:
    assert normalise_internet("ADSL", "36362608") == (
        "036362608",
        ["leading 0 restored (lost by Excel)"],
        None,
    )


@pytest.mark.parametrize(
    ("kind", "raw", "number", "error"),
    [
        ("ADSL", "036362608", "036362608", None),
        ("ADSL", "36362608", "036362608", None),
        ("ADSL", "036 36 26 08", "036362608", None),
        (
            "ADSL",
            "0363626081",
            None,
            '"0363626081" is not an ADSL line number: 9 digits starting '
            "with 0 (0XXXXXXXX), area code included",
        ),
        ("4G", "213661234567", "213661234567", None),
        ("4G", "+213661234567", "213661234567", None),
        ("4G", "00213661234567", "213661234567", None),
        ("4G", "0661234567", "213661234567", None),
        (
            "4G",
            "21366123456",
            None,
            '"21366123456" is not a 4G number: 213 followed by 9 digits (213XXXXXXXXX)',
        ),
    ],
)
def test_internet_numbers(kind: str, raw: str, number: str | None, error: str | None) -> None:
    got, _, err = normalise_internet(kind, raw)
    assert err == error
    if number:
        assert got == number


@pytest.mark.parametrize(
    ("raw", "amount", "error"),
    [
        ("1000", 1000, None),
        ("1 000", 1000, None),
        ("1000,00", 1000, None),
        ("1000.0", 1000, None),
        ("1\u00a0000", 1000, None),
        ("1 000 DA", 1000, None),
        ("1.000,00", 1000, None),
        ("1,000,000", 1000000, None),
        (
            "1.000",
            None,
            '"1.000" is ambiguous (1000 DA, or 1 DA with decimals?); write the amount '
            "without a separator, e.g. 1000",
        ),
        (
            "999,50",
            None,
            '"999,50" is not a whole number of dinars; amounts are whole DZD (no centimes)',
        ),
        ("-500", None, '"-500" is negative; write a positive whole amount'),
        ("abc", None, '"abc" is not an amount in dinars'),
    ],
)
def test_amounts(raw: str, amount: int | None, error: str | None) -> None:
    got, _, err = parse_dzd(raw)
    assert (got, err) == (amount, error)


@pytest.mark.parametrize(
    ("raw", "repair"),
    [
        ("1000", None),
        ("1 000,00", '"1 000,00" read as 1000 DA'),
        ("2 000", '"2 000" read as 2000 DA'),
        ("500 DA", '"500 DA" read as 500 DA'),
        ("500 dzd", '"500 dzd" read as 500 DA'),
        ("1000,00", '"1000,00" read as 1000 DA'),
        ("1.000,00", '"1.000,00" read as 1000 DA'),
    ],
)
def test_every_amount_repair_is_said(raw: str, repair: str | None) -> None:
    assert parse_dzd(raw)[1] == repair


# --- rules with their exact messages -------------------------------------------------------------

pytestmark = pytest.mark.anyio


async def test_valid_mobile_row_has_no_problem(catalog) -> None:
    assert problems(catalog, mobile()) == []


async def test_mobile_rules(catalog) -> None:
    assert problems(catalog, mobile(plan="NOPE_PLAN")) == [
        'error: row 2, plan_code: "NOPE_PLAN" is not a plan of the provider '
        "(see: bulk-topup catalog mobile)"
    ]
    assert problems(catalog, mobile(plan="PREPAID_MOBILIZ")) == [
        'error: row 2, plan_code: "PREPAID_MOBILIZ" is not a plan of the provider; did you mean '
        "PREPAID_MOBILIS? (see: bulk-topup catalog mobile)"
    ]
    assert problems(catalog, mobile("0551234567", "FACTURE_OOREDOO", "500")) == [
        "error: row 2, plan_code: plan FACTURE_OOREDOO is switched off by the provider for now; "
        "choose another plan or try later"
    ]
    assert problems(catalog, mobile(amount="4000")) == [
        "error: row 2, amount: 4000 DA is outside what plan PREPAID_MOBILIS allows (40 to 3999 DA)"
    ]
    assert problems(catalog, mobile(amount="")) == [
        "error: row 2, amount: is empty; plan PREPAID_MOBILIS needs an amount from 40 to 3999 DA"
    ]
    assert problems(catalog, mobile(amount="999,50")) == [
        'error: row 2, amount: "999,50" is not a whole number of dinars; amounts are whole DZD '
        "(no centimes)"
    ]
    assert problems(catalog, mobile(plan="PIXX_500", amount="1000")) == [
        "error: row 2, amount: plan PIXX_500 is a fixed 500 DA offer; leave the amount empty or "
        "write 500"
    ]
    assert problems(catalog, mobile(plan="PIXX_500", amount="")) == []
    assert problems(catalog, mobile(plan="")) == [
        "error: row 2, plan_code: is empty; write a plan code such as PREPAID_DJEZZY "
        "(see: bulk-topup catalog mobile)"
    ]


async def test_operator_mismatch_is_only_a_warning(catalog) -> None:
    assert problems(catalog, mobile("0771234567")) == [
        "warning: row 2, phone: 0771234567 looks like a Djezzy number but plan PREPAID_MOBILIS "
        "is Mobilis; numbers can be ported, so check it"
    ]


async def test_repairs_are_warnings_on_their_row(catalog) -> None:
    result = build_orders(sheet_of(mobile("778037340", "PREPAID_DJEZZY", "1 000")), "b", catalog)
    order = result.orders[0]
    assert order.valid and order.target == "0778037340" and order.amount == 1000
    assert [str(w) for w in order.warnings] == [
        "row 2, phone: leading 0 restored (lost by Excel): read as 0778037340",
        'row 2, amount: "1 000" read as 1000 DA',
    ]
    assert order.cost == 992.5 and order.face_value == 1000


async def test_internet_rules(catalog) -> None:
    row = {"internet_type": "ADSL", "number": "036362608", "value": "1000"}
    assert problems(catalog, row) == []
    assert problems(catalog, {**row, "value": "5000"}) == [
        "error: row 2, value: ADSL 5000 DA cards are out of stock; available now: 500, 1000, "
        "2000 DA"
    ]
    assert problems(catalog, {**row, "value": "750"}) == [
        "error: row 2, value: 750 DA is not a ADSL card value; the provider offers 500, 1000, "
        "2000 DA"
    ]
    assert problems(catalog, {**row, "internet_type": "3G"}) == [
        'error: row 2, internet_type: "3G" is not ADSL or 4G'
    ]
    assert problems(catalog, {**row, "internet_type": "4G"}) == [
        'error: row 2, number: "036362608" is not a 4G number: 213 followed by 9 digits '
        "(213XXXXXXXXX)"
    ]


async def test_gift_rules(catalog) -> None:
    psn = "507f1f77bcf86cd799439011"
    row = {"product_id": psn, "type_id": "type_001", "quantity": "2"}
    assert problems(catalog, row) == []
    assert problems(catalog, {**row, "type_id": "type_003"}) == [
        "error: row 2, type_id: PlayStation Network - PSN 2000 DA is sold out"
    ]
    assert problems(catalog, {**row, "type_id": "type_9"}) == [
        'error: row 2, type_id: "type_9" is not a type of PlayStation Network; its types are '
        "type_001, type_002, type_003, TEST_REFUND, TEST_PARTIAL"
    ]
    assert problems(catalog, {**row, "quantity": "0"}) == [
        "error: row 2, quantity: 0 cards: order at least 1"
    ]
    assert problems(
        catalog, {**row, "product_id": "507f1f77bcf86cd799439015", "type_id": "xbox_10usd"}
    ) == ["error: row 2, product_id: Xbox Live is not on sale right now"]
    assert problems(catalog, {**row, "product_id": "nope"}) == [
        'error: row 2, product_id: "nope" is not a gift card product of the provider '
        "(see: bulk-topup catalog gift)"
    ]
    # Stock counts every earlier row of the sheet.
    assert problems(catalog, {**row, "quantity": "100"}, {**row, "quantity": "60"}) == [
        "error: row 3, quantity: 60 cards asked (100 already ordered in rows above), but only 150 "
        "PlayStation Network - PSN 500 DA are in stock"
    ]


async def test_duplicates(catalog) -> None:
    assert problems(catalog, mobile(), mobile()) == [
        "error: row 3, phone: same order as row 2 (PREPAID_MOBILIS 500 DA to 0661234567); "
        "remove one, or pass --allow-duplicates if both are meant"
    ]
    result = build_orders(sheet_of(mobile(), mobile()), "b", catalog, allow_duplicates=True)
    assert all(o.valid for o in result.orders)
    assert len({o.ref for o in result.orders}) == 2


async def test_user_refs(catalog) -> None:
    assert problems(catalog, {**mobile(), "ref": "has space"}) == [
        'error: row 2, ref: "has space" is not a usable ref: at most 40 letters, digits, _ or -'
    ]
    assert problems(catalog, {**mobile(), "ref": "r1"}, {**mobile(amount="600"), "ref": "r1"}) == [
        'error: row 3, ref: "r1" is also the ref of row 2; refs must be unique'
    ]
    assert (
        build_orders(sheet_of({**mobile(), "ref": "EMP-7"}), "b", catalog).orders[0].ref == "EMP-7"
    )


async def test_kind_column(catalog) -> None:
    assert problems(catalog, {**mobile(), "kind": "flexy"}) == []
    assert problems(catalog, {**mobile(), "kind": "bitcoin"}) == [
        'error: row 2, kind: "bitcoin" is not a kind of order; write mobile, internet or giftcard'
    ]


def test_without_catalog_the_catalog_checks_are_named_as_skipped() -> None:
    result = build_orders(sheet_of(mobile(plan="ANY_PLAN")), "b", None)
    assert result.orders[0].valid
    assert any(
        "plan codes, amounts and operators were NOT checked" in n for n in result.catalog_notes
    )


# --- refs ----------------------------------------------------------------------------------------


def test_refs_are_pinned() -> None:
    """Golden values: if these change, resumed batches would resend everything."""
    assert make_ref("payroll-2026-11", "mobile", "0778037340", "PREPAID_DJEZZY", 1000, 0) == (
        "payroll-2026-11-uu22ugdn4wr5lvevb77ywb6w"
    )
    assert make_ref("payroll-2026-11", "mobile", "0778037340", "PREPAID_DJEZZY", 1000, 1) == (
        "payroll-2026-11-jawrh7kaodlkglmxe2odxcyd"
    )
    assert (
        make_ref("Payroll November 2026 / Finance", "internet", "036362608", "ADSL", 1000, 0)
        == "payroll-november-cxcx4fd27s7fx3arapy5fma"
    )
    assert payload_hash(
        {"kind": "mobile", "plan_code": "PREPAID_DJEZZY", "MSSIDN": "0778037340", "amount": 1000}
    ) == ("8dc59e4069bb2ce8700195507735e433de3fa6523627b958971c818313834db3")
    assert batch_slug("***") == "batch"


async def test_refs_survive_reordering_and_insertion(catalog) -> None:
    a = build_orders(sheet_of(mobile("0661234567"), mobile("0661234568")), "b", catalog)
    b = build_orders(
        sheet_of(
            mobile("0551234567", "PREPAID_OOREDOO"), mobile("0661234568"), mobile("0661234567")
        ),
        "b",
        catalog,
    )
    refs_a = {o.target: o.ref for o in a.orders}
    refs_b = {o.target: o.ref for o in b.orders}
    assert refs_a["0661234567"] == refs_b["0661234567"]
    assert refs_a["0661234568"] == refs_b["0661234568"]
    other = build_orders(sheet_of(mobile("0661234567")), "next-month", catalog)
    assert other.orders[0].ref != refs_a["0661234567"]
    assert all(len(o.ref) <= 40 for o in a.orders + b.orders)


async def test_the_amount_is_part_of_every_ref(catalog) -> None:
    """Two top-ups of one number on one plan differ by their amount, and so do their refs: a
    ref that ignored the amount would adopt the first order for the second row."""
    rows = [
        {"phone": "0661234567", "plan_code": "PREPAID_MOBILIS", "amount": "500"},
        {"phone": "0661234567", "plan_code": "PREPAID_MOBILIS", "amount": "700"},
        {"internet_type": "ADSL", "number": "036362608", "value": "1000"},
        {"internet_type": "ADSL", "number": "036362608", "value": "2000"},
    ]
    orders = build_orders(sheet_of(*rows), "b", catalog).orders
    assert [o.valid for o in orders] == [True] * 4
    assert len({o.ref for o in orders}) == 4
    assert orders[0].ref == make_ref("b", "mobile", "0661234567", "PREPAID_MOBILIS", 500, 0)
    assert orders[3].ref == make_ref("b", "internet", "036362608", "ADSL", 2000, 0)


async def test_identical_gift_cards_for_two_people_are_two_orders(catalog) -> None:
    """The same card for Amel and for Bilal is not a duplicate (their names tell them apart),
    and their refs differ; without names it is the same order twice, reported under the
    product's column as the sheet wrote it."""
    gift = {"product_id": "507f1f77bcf86cd799439011", "type_id": "type_001", "quantity": "1"}
    named = build_orders(
        sheet_of({"name": "Amel", **gift}, {"name": "Bilal", **gift}), "b", catalog
    )
    assert [o.valid for o in named.orders] == [True, True]
    assert named.orders[0].ref != named.orders[1].ref
    bare = build_orders(sheet_of(dict(gift), dict(gift)), "b", catalog)
    assert not bare.orders[1].valid
    problem = bare.orders[1].errors[0]
    assert problem.field == "product_id" and "same order as row 2" in str(problem.message)


def test_arabic_indic_digits_are_read_alike_in_numbers_and_amounts() -> None:
    number, repairs, error = normalise_mobile("٠٦٦١٢٣٤٥٦٧")
    assert (number, error) == ("0661234567", None)
    assert [str(r) for r in repairs] == ["written in Arabic-Indic digits"]
    assert normalise_internet("ADSL", "۰۳۶۳۶۲۶۰۸")[0] == "036362608"
    amount, repair, error = parse_dzd("٥٠٠")
    assert (amount, error) == (500, None) and str(repair) == '"٥٠٠" read as 500 DA'


async def test_a_cell_in_error_is_named_once_by_its_cause(catalog: Catalog) -> None:
    """A formula never computed leaves its cell empty: the clerk reads the cause, not also the
    "is empty" that follows from it."""
    sheet = sheet_of(mobile(phone=""), mobile(phone="", amount="abc"))
    sheet.rows[0].formulas = frozenset({"phone"})
    sheet.rows[1].excel_errors = {"phone": "#N/A"}
    result = build_orders(sheet, "b", catalog)
    assert [(p.field, p.message) for p in result.orders[0].errors] == [
        ("phone", "the cell holds a formula with no computed value; type the value itself")
    ]
    assert [(p.field, p.message) for p in result.orders[1].errors] == [
        ("phone", "the cell shows an Excel error (#N/A); type the value itself"),
        ("amount", '"abc" is not an amount in dinars'),
    ]
