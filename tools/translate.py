"""Fill French translations into the catalogue from a small JSON file of {msgid: msgstr}, then
recompile (`make i18n` afterwards keeps the catalogue sorted and the .mo fresh).

    python tools/translate.py new.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

PO = Path(__file__).resolve().parent.parent / "bulk_topup/locale/fr/LC_MESSAGES/bulk_topup.po"


def main(path: str) -> None:
    given = json.loads(Path(path).read_text(encoding="utf-8"))
    with PO.open("rb") as f:
        catalog = read_po(f)
    done = 0
    for message in catalog:
        if message.id in given:
            message.string = given[message.id]
            message.flags.discard("fuzzy")
            done += 1
    with PO.open("wb") as f:
        write_po(f, catalog, width=0, sort_output=True, ignore_obsolete=True)
    missing = set(given) - {m.id for m in catalog}
    print(f"{done} translated; not in the catalogue: {sorted(missing) or 'none'}")


if __name__ == "__main__":
    main(sys.argv[1])
