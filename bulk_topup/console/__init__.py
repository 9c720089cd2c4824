"""The finance console: a web face over the library the command line calls, never a second engine.

    app.py      the Starlette app: routes, templates, security headers, the user's language
    web.py      what every page handler shares: state, user, render, refuse, changes() (CSRF)
    auth.py     a one-time sign-in token, then a session cookie; a CSRF token per session
    uploads.py  the sheets people upload, kept 0600 in <state dir>/uploads/
    runs.py     runs started here: tasks of the server's event loop, their hooks, stop
    sheets.py   pages of an uploaded sheet: upload, check, plan and approval, confirmation
    batches.py  pages of a batch: progress (server-sent events), results, downloads, batches

Every page calls the functions `bulk-topup` calls (`service`, `plan`, `planfile`, `approval`,
`report`, `journal`); the journal is the only record, so a page is rebuilt from it at any time,
whoever ran the batch and however often the console restarted.
"""

from .app import ConsoleConfig, create_console

__all__ = ["ConsoleConfig", "create_console"]
