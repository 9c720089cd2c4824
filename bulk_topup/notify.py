"""Word sent when a batch ends, stops or needs a person: one message, through apprise.

apprise speaks e-mail (`mailto://`), Telegram (`tgram://`), Slack (`slack://`), a plain JSON
webhook (`json://host/path`, `jsons://` over TLS) and many more; the address comes from `--notify
URL` or env `BULK_TOPUP_NOTIFY` (several addresses: separate them with a comma).

The message is built from the batch key, the exit code in words, counts per state, amounts, the
results file's path and the library's own sentences (stop reason, refusal), and nothing else: no
card code and no key can be in it. The API key, when given, is still scrubbed from it as a last
guard. A failed delivery is returned as data (`Delivery.ok` false, with why), never raised: the
caller says so and the run's exit code stays what it was. The message is in the language of the
command that sends it (`--lang`).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .i18n import N_, _, money
from .texts import display

#: The exit codes of DESIGN.md's contract, in words.
EXIT_WORDS = {
    0: N_("finished: every row fulfilled"),
    1: N_("stopped by an internal error: needs a person"),
    2: N_("did not start (usage error or unreadable sheet): needs a person"),
    3: N_("did not start: invalid rows, nothing was sent: needs a person"),
    4: N_("finished: some rows failed (refunded, rejected or partly filled): needs a person"),
    5: N_("stopped with rows not final: resume or reconcile later"),
    6: N_("refused to start, nothing was sent: needs a person"),
    7: N_("did not start: the batch is being run by another process"),
}


@dataclass
class BatchNews:
    """What a run, resume or reconcile of one batch came to."""

    batch: str
    command: str  # run | resume | reconcile
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    face_value: float = 0.0
    debited: float = 0.0
    refunds: float = 0.0
    results: str | None = None
    stop_reason: str | None = None
    environment: str | None = None
    problem: str | None = None  # why it did not start, when it did not
    chain_head: str | None = None  # the journal's last event hash: `audit --head` checks it


@dataclass(frozen=True)
class Delivery:
    ok: bool
    detail: str  # where it went (the address with its secrets masked), or why it failed


def news_from_journal(
    journal: Any,
    *,
    command: str,
    exit_code: int,
    results: str | None = None,
    stop_reason: str | None = None,
) -> BatchNews:
    """The news of a batch from its journal (counts and amounts as the journal has them)."""
    totals = journal.totals()
    return BatchNews(
        batch=journal.get_meta("batch") or "",
        command=command,
        exit_code=exit_code,
        counts=journal.counts(),
        face_value=totals["face_value"],
        debited=totals["debited"],
        refunds=totals["refunds"],
        results=results,
        stop_reason=stop_reason,
        environment=journal.get_meta("environment"),
        chain_head=_head(journal),
    )


def _head(journal: Any) -> str | None:
    last = journal.db.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    return last[0][:16] if last and last[0] else None


def worth_telling(before: dict[str, int], after: dict[str, int], exit_code: int) -> bool:
    """For reconcile: tell when something changed, or while the batch still waits on somebody;
    a finished batch that a daily reconcile found unchanged is no news."""
    return before != after or exit_code not in (0, 4)


def compose(news: BatchNews) -> tuple[str, str]:
    """The title and plain-text body of the message."""
    words = _(EXIT_WORDS.get(news.exit_code, N_("ended")))
    title = _("bulk-topup {batch}: {words} (exit {code})").format(
        batch=news.batch, words=words, code=news.exit_code
    )
    env = f" ({news.environment})" if news.environment else ""
    lines = [
        _("{command} of batch {batch}{env}: {words} (exit code {code}).").format(
            command=news.command, batch=news.batch, env=env, words=words, code=news.exit_code
        )
    ]
    if news.problem:
        lines.append(_("why: {problem}").format(problem=display(news.problem)))
    if news.counts:
        total = sum(news.counts.values())
        states = ", ".join(f"{state} {n}" for state, n in sorted(news.counts.items()))
        lines.append(_("rows: {total} ({states})").format(total=total, states=states))
        lines.append(
            _("amounts: {face} DA face value, {debited} DA debited, {refunds} DA refunded").format(
                face=money(news.face_value), debited=money(news.debited),
                refunds=money(news.refunds),
            )
        )  # fmt: skip
    if news.stop_reason:
        lines.append(_("stopped: {reason}").format(reason=display(news.stop_reason)))
    if news.results:
        lines.append(_("results: {path}").format(path=news.results))
    if news.chain_head:
        lines.append(
            _(
                "journal head: {head} (bulk-topup audit --batch {batch} --head {head} checks the "
                "record still ends there or later)"
            ).format(head=news.chain_head, batch=news.batch)
        )
    if news.exit_code == 5:
        lines.append(
            _("next: bulk-topup resume --batch {batch} (or reconcile later)").format(
                batch=news.batch
            )
        )
    elif news.exit_code == 4:
        from .report import sheet_name

        lines.append(
            _("next: see '{attention}' and '{retry}' in the results").format(
                attention=sheet_name("attention"), retry=sheet_name("retry")
            )
        )
    return title, "\n".join(lines)


def notify_url(explicit: str | None) -> str | None:
    """The address to tell: `--notify`, else env BULK_TOPUP_NOTIFY, else None."""
    return (explicit or os.environ.get("BULK_TOPUP_NOTIFY", "")).strip() or None


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "•••")
    return text


def send(url: str, news: BatchNews, *, secrets: Iterable[str] = ()) -> Delivery:
    """Send the news of a batch to `url` (apprise addresses). Never raises for a failed
    delivery: the Delivery says what happened."""
    secrets = [*secrets, url]
    title, body = compose(news)
    title, body = _scrub(title, secrets), _scrub(body, secrets)
    with warnings.catch_warnings():
        # apprise's e-mail plugin imports `imghdr` when plugins load, which Python 3.11 marks
        # deprecated; that warning is apprise's, not ours, and must not fail a run or a test.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import apprise

        box = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
        if not box.add(url):
            return Delivery(
                False,
                _(
                    "the notification address is not one apprise understands (e.g. "
                    "json://host/path, mailto://, tgram://, slack://)"
                ),
            )
        where = ", ".join(_private_url(s) for s in box)
        try:
            with apprise.LogCapture(level=logging.WARNING) as logs:
                ok = bool(box.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT))
                said = logs.getvalue()
        except Exception as e:  # a plugin's own failure must not change the run's outcome
            return Delivery(False, _scrub(f"{where}: {type(e).__name__}: {e}", secrets))
    if ok:
        return Delivery(True, where)
    reason = _last_line(said) or _("the service did not accept the message")
    return Delivery(False, _scrub(f"{where}: {reason}", secrets))


def _private_url(service: Any) -> str:
    try:
        return str(service.url(privacy=True))
    except Exception:
        return _("the notification address")


def _last_line(log_text: str) -> str:
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    if not lines:
        return ""
    # apprise's log lines start with a time and a level: keep what it says.
    return re.sub(r"^.*? - (WARNING|ERROR|CRITICAL) - ", "", lines[-1])
