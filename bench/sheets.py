"""Large order sheets for the benchmarks, made on the fly (never committed)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from openpyxl import Workbook

HEADERS = ["Name", "Employee ID", "Phone", "Plan", "Amount", "Internet type", "Number", "Value"]
PLANS = [("PREPAID_DJEZZY", "07", 100, 10000), ("PREPAID_MOBILIS", "06", 40, 3999),
         ("PREPAID_OOREDOO", "05", 50, 5000)]  # fmt: skip


def rows(n: int, seed: int = 1, internet_share: float = 0.1) -> list[list[str]]:
    """`n` distinct, valid rows: mostly mobile top-ups, some ADSL cards."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        name, emp = f"Employee {i}", f"E{i:06d}"
        if rnd.random() < internet_share:
            out.append([name, emp, "", "", "", "ADSL", f"0{30000000 + i:08d}", "1000"])
        else:
            plan, prefix, lo, hi = PLANS[i % 3]
            amount = str(rnd.randrange(lo, min(hi, 3000) + 1))
            out.append([name, emp, f"{prefix}{20000000 + i:08d}", plan, amount, "", "", ""])
    return out


def write_csv(path: Path, data: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADERS)
        w.writerows(data)
    return path


def write_xlsx(path: Path, data: list[list[str]]) -> Path:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Orders")
    ws.append(HEADERS)
    for row in data:
        ws.append(row)
    wb.save(path)
    return path
