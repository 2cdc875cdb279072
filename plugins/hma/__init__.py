"""HMA: looks items up in the banks of a Hasher-Matcher-Actioner the platform already runs.

For sites that run Meta's HMA (1.x, "OpenMediaMatch") with its exchanges (NCMEC, StopNCII,
ThreatExchange, Tech Against Terrorism): Modtools Image sends HMA the item's PDQ hash (``pdq``,
the default; the image never leaves this server) or the image for HMA to hash (``bytes``), and
turns the banks HMA names into labels and matches. Setup: docs/integrations/hma.md. Banks move
between HMA and ours with ``flask banks export/import`` (docs/banks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.plugins import ConnectionResult, ScanContext, Scanner, ScanOutcome, Setting, hookimpl
from plugins.hma import client
from plugins.hma.client import HMARefused, HMAUnavailable
from plugins.hma.outcomes import bank_names, outcome_of, parse_bank_labels


class HMAScanner(Scanner):
    """A match in any (allowed) HMA bank is a ``match`` labelled after the bank."""

    name = "hma"
    title = "Hasher-Matcher-Actioner (HMA)"
    version = "1.0"
    description = (
        "Looks images up in the banks of your own HMA (Meta's Hasher-Matcher-Actioner), by PDQ "
        "hash or by sending the image for HMA to hash."
    )
    timeout = 10.0
    settings = (
        Setting(
            "base_url",
            "url",
            required=True,
            label="HMA address",
            help="Where HMA's matcher answers, such as http://hma.internal:5000.",
        ),
        Setting(
            "mode",
            "choice",
            default="pdq",
            choices=[("pdq", "Send the PDQ hash"), ("bytes", "Send the image for HMA to hash")],
            help="Sending the image needs HMA's hasher role, and is slower.",
        ),
        Setting(
            "banks",
            help="Only these HMA banks, separated by commas (e.g. NCMEC_CSAM, STOPNCII). "
            "Empty: every bank.",
        ),
        Setting(
            "bank_labels",
            "multiline",
            help="One line per bank, “BANK_NAME: label, label”, e.g. “NCMEC_CSAM: csam”. A bank "
            "not listed is labelled with its name in lower case.",
        ),
        Setting(
            "auth_header",
            default="Authorization",
            label="Authentication header",
            help="HMA has no login of its own: the header your reverse proxy checks.",
        ),
        Setting(
            "auth_value",
            secret=True,
            label="Authentication header value",
            help="Such as “Bearer …”. Empty: no header is sent.",
        ),
    )

    def scan(self, ctx: ScanContext) -> ScanOutcome:
        """Look the item up in HMA; raise when HMA could not answer now."""
        try:
            return self._look_up(ctx)
        except HMARefused as refusal:  # the header, the address, a setting: no retry can help
            return refusal.outcome(ctx.settings["mode"])

    def _look_up(self, ctx: ScanContext) -> ScanOutcome:
        settings = ctx.settings
        labels = _bank_labels(settings)
        allowed = bank_names(settings["banks"])
        params = {"banks": ",".join(allowed)} if allowed else {}
        if ctx.item_id:
            params["seed"] = ctx.item_id  # HMA's per-bank sampling then decides the same each time
        base, headers = settings["base_url"], _auth_headers(settings)
        if settings["mode"] == "bytes":
            try:
                data = ctx.data()
            except LookupError as error:  # the image was purged: nothing to send
                raise HMARefused(str(error), "image") from None
            mime = ctx.mime or "image/jpeg"
            answer = client.lookup_image(base, data, mime, params, headers, ctx.timeout)
            found = answer.get("pdq") if isinstance(answer, dict) else None
            if found == "":  # HMA's hasher drops hashes of quality below 50
                return _not_hashable("bytes", answer, "HMA found the picture too flat to hash")
            if found is None:
                message = "HMA's answer has no PDQ result: is its pdq signal type on?"
                raise HMARefused(message, "settings")
            return outcome_of(found, "bytes", {"response": answer}, labels, allowed)
        if not ctx.pdq:
            return _not_hashable("nothing", None, "no usable PDQ hash (quality below 50)")
        answer = client.lookup_hash(base, ctx.pdq, params, headers, ctx.timeout)
        return outcome_of(answer, "pdq", {"response": answer}, labels, allowed)

    def test_connection(self, settings: Mapping[str, Any]) -> ConnectionResult:
        """Read HMA's index status: proves the address and the header, and that it has banks."""
        try:
            _bank_labels(settings)
            status = client.index_status(
                settings["base_url"], _auth_headers(settings), self.timeout
            )
        except (HMARefused, HMAUnavailable) as error:
            return ConnectionResult(False, str(error))
        pdq = status.get("pdq") if isinstance(status, dict) else None
        if not isinstance(pdq, dict) or not pdq.get("present"):
            return ConnectionResult(
                False, "HMA answered, but has no PDQ index yet: add a bank with hashes first."
            )
        return ConnectionResult(
            True, f"HMA answered: its PDQ index holds {pdq.get('size')} hashes."
        )


def _bank_labels(settings: Mapping[str, Any]) -> dict[str, list[str]]:
    try:
        return parse_bank_labels(settings["bank_labels"])
    except ValueError as error:
        raise HMARefused(str(error), "settings") from None


def _auth_headers(settings: Mapping[str, Any]) -> dict[str, str]:
    name, value = (settings["auth_header"] or "").strip(), settings["auth_value"]
    return {name: str(value)} if name and value else {}


def _not_hashable(sent: str, answer: Any, reason: str) -> ScanOutcome:
    """Clear, as HMA itself would say: a picture too flat for PDQ matches nothing reliably."""
    return ScanOutcome("clear", raw={"sent": sent, "skipped": reason, "response": answer})


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The HMA scanner."""
    return [HMAScanner]
