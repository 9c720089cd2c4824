"""Open a workbook in LibreOffice through UNO, with a password or without, and print the first
sheet's first rows (tab-separated), or REFUSED when LibreOffice will not open it.

Run with the system's Python (Debian's python3-uno), not the project's: the test starts it as
`/usr/bin/python3 tests/lo_open.py FILE PASSWORD PROFILE_DIR` ("" for no password).
"""

import contextlib
import os
import subprocess
import sys
import time

import uno
from com.sun.star.beans import PropertyValue


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def main() -> int:
    path, password, profile = sys.argv[1], sys.argv[2], sys.argv[3]
    pipe = f"bulk_topup_{os.getpid()}"
    office = subprocess.Popen(
        [
            "soffice",
            "--headless",
            "--invisible",
            "--norestore",
            "--nologo",
            f"-env:UserInstallation=file://{profile}",
            f"--accept=pipe,name={pipe};urp;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    desktop = None
    try:
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext(
            "com.sun.star.bridge.UnoUrlResolver", local
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        props = [prop("Hidden", True)]
        if password:
            props.append(prop("Password", password))
        try:
            doc = desktop.loadComponentFromURL(
                uno.systemPathToFileUrl(os.path.abspath(path)), "_blank", 0, tuple(props)
            )
        except Exception as e:  # a wrong or missing password: LibreOffice refuses to load
            print(f"REFUSED {type(e).__name__}")
            return 3
        if doc is None:
            print("REFUSED")
            return 3
        sheet = doc.Sheets.getByIndex(0)
        for r in range(4):
            print("\t".join(sheet.getCellByPosition(c, r).getString() for c in range(12)))
        doc.close(True)
        return 0
    finally:
        if desktop is not None:
            # the office closes its end of the bridge as it leaves: that is no failure
            with contextlib.suppress(Exception):
                desktop.terminate()
        try:
            office.wait(10)
        except subprocess.TimeoutExpired:
            office.kill()
            office.wait(10)


if __name__ == "__main__":
    sys.exit(main())
