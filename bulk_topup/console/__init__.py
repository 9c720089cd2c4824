"""The finance console: a web face over the library the command line calls, never a second engine.

    app.py      the Starlette app: routes, templates, security headers (on every response, errors
                too), the user's language, the sign-on proxy believed only from its addresses
    web.py      what every page handler shares: state, user, render, refuse, the clerk's words and
                times, changes() (CSRF first, then the form within a size limit)
    auth.py     a one-time sign-in token, then a session cookie named per console; a CSRF token
                per session
    uploads.py  the sheets people upload, kept 0600 in <state dir>/uploads/
    runs.py     runs started here: tasks of the server's event loop, their hooks, stop
    sheets.py   pages of an uploaded sheet: upload, check, plan and approval, confirmation (and
                the choices a person makes there: send edited rows, pay again, on purpose)
    batches.py  pages of a batch: progress (server-sent events), stop, resume, reconcile, batches
    results.py  a batch's results: figures, Needs attention, Retry, codes revealed, downloads

Every page calls the functions `bulk-topup` calls (`service`, `plan`, `planfile`, `approval`,
`report`, `journal`); the journal is the only record, so a page is rebuilt from it at any time,
whoever ran the batch and however often the console restarted.
"""

from .app import ConsoleConfig, create_console

__all__ = ["ConsoleConfig", "create_console"]
