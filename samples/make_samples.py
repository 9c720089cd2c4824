"""Rebuild the sample sheets: `python samples/make_samples.py` (they are committed as made)."""

from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

HERE = Path(__file__).parent
HEADERS = [
    "Name",
    "Employee ID",
    "Kind",
    "Phone",
    "Plan",
    "Amount",
    "Internet type",
    "Number",
    "Value",
    "Product ID",
    "Type ID",
    "Quantity",
]
ROWS = [
    ["Amina Benali", "E001", "mobile", "0778037340", "PREPAID_DJEZZY", "1000"],
    ["Karim Haddad", "E002", "mobile", "0661234567", "PREPAID_MOBILIS", "500"],
    ["Sofiane Meziane", "E003", "mobile", "0551234567", "PREPAID_OOREDOO", "2000"],
    ["Nadia Cherif", "E004", "mobile", "0662345678", "PIXX_500", ""],
    ["Yacine Bouzid", "E005", "mobile", "0700000001", "PREPAID_DJEZZY", "1500"],
    ["Test: refunded", "T001", "mobile", "0600000001", "PREPAID_DJEZZY", "500"],
    ["Test: suggested offers", "T002", "mobile", "0600000002", "PREPAID_DJEZZY", "500"],
    ["Test: unknown outcome", "T003", "mobile", "0600000003", "PREPAID_DJEZZY", "300"],
    ["Office Alger (ADSL)", "OFF1", "internet", "", "", "", "ADSL", "036362608", "1000"],
    ["Office Oran (4G)", "OFF2", "internet", "", "", "", "4G", "213661234567", "1500"],
    [
        "Rewards: PSN",
        "E006",
        "giftcard",
        "",
        "",
        "",
        "",
        "",
        "",
        "507f1f77bcf86cd799439011",
        "type_001",
        "2",
    ],
    [
        "Rewards: Netflix",
        "E007",
        "giftcard",
        "",
        "",
        "",
        "",
        "",
        "",
        "507f1f77bcf86cd799439014",
        "nf_1m",
        "1",
    ],
    [
        "Test: partial fill",
        "T004",
        "giftcard",
        "",
        "",
        "",
        "",
        "",
        "",
        "507f1f77bcf86cd799439012",
        "TEST_PARTIAL",
        "4",
    ],
]

MESSY_HEADERS = ["Nom", "Numéro", "Offre", "Montant", "Remarque"]
MESSY_ROWS = [
    ["Amel", "778037340", "PREPAID_DJEZZY", "1 000", "zéro perdu par Excel"],
    ["Bilal", "+213 661 23 45 67", "PREPAID_MOBILIS", "1000,00", "indicatif +213"],
    ["Chahra", "00213551234567", "PREPAID_OOREDOO", "500", "indicatif 00213"],
    ["Djamel", "7.78037341E+08", "PREPAID_DJEZZY", "2000", "notation scientifique"],
    ["", "", "", "", ""],
    ["Emna", "0661-23-45-68", "prepaid_mobilis", "750", "tirets, offre en minuscules"],
    ["Farid", "0661.23.45.69", "PREPAID_MOBILIS", "999,50", "centimes : refusé"],
    ["Ghania", "77803734", "PREPAID_DJEZZY", "500", "8 chiffres : refusé"],
    ["Hakim", "0771234567", "PREPAID_MOBILIS", "500", "numéro Djezzy, offre Mobilis"],
    ["Ines", "0552345678", "FACTURE_OOREDOO", "1500", "offre désactivée"],
]


def main() -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "Orders"
    ws.append(["Top-ups for November 2026"])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(["Prepared by Finance"])
    ws.append([])
    ws.append(HEADERS)
    for row in ROWS:
        ws.append(row + [""] * (len(HEADERS) - len(row)))
    for cell in ws[4]:
        cell.font = Font(bold=True)
    for col in "DH":
        for cell in ws[col]:
            cell.number_format = "@"
    wb.save(HERE / "orders.xlsx")
    with (HERE / "orders.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADERS)
        for row in ROWS:
            w.writerow(row + [""] * (len(HEADERS) - len(row)))
    with (HERE / "messy.csv").open("w", newline="", encoding="cp1252") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["Recharges décembre"])
        w.writerow([])
        w.writerow(MESSY_HEADERS)
        w.writerows(MESSY_ROWS)


if __name__ == "__main__":
    main()
