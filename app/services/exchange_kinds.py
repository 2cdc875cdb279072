"""The kinds of hash exchange we fetch from: their settings, credentials, client and image hashes.

Each kind says which settings and (secret) credentials it needs, so the admin pages and the
command line can ask for them without per-kind code; how to build the threatexchange client from
them; and which image hashes one upstream record gives (``exchange_signals``).
``docs/integrations/exchanges.md`` explains each kind to operators.

The threatexchange library (and faiss, which it imports) costs about 16 MiB and 0.2 s, so only
the builders import it: the server loads it with its first fetch, not at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.services.exchange_signals import (
    IMAGE_NAMES,
    SignalsOf,
    ncmec_signals,
    simple_signals,
    threatexchange_signals,
)

if TYPE_CHECKING:
    from app.services.exchange_hash_list import HashListAccess

TE_TOKEN = r"[0-9]{8,}(%7C|\|)[A-Za-z0-9_-]{20,}"
BASE_URL_HELP = "Leave empty for the exchange's own address. Set only for a proxy or a test server."


@dataclass(frozen=True)
class Setting:
    """One setting or credential an exchange kind asks for."""

    name: str
    title: str
    help: str = ""
    required: bool = False
    type: str = "text"  # text, url, integer, ids (integers, comma-separated), choice, location
    choices: tuple[tuple[str, str], ...] = ()
    pattern: str | None = None  # a regular expression the whole value must match
    pattern_help: str = ""


@dataclass(frozen=True)
class ExchangeKind:
    """What we need to know to fetch from one kind of exchange."""

    name: str
    title: str
    summary: str
    credentials: tuple[Setting, ...]
    settings: tuple[Setting, ...]
    build: Callable[[str, dict[str, Any], dict[str, str], HashListAccess], Any]
    signals: SignalsOf


def _base_url(settings: dict[str, Any]) -> str | None:
    return (settings.get("base_url") or "").strip() or None


def _build_ncmec(name: str, settings: dict[str, Any], creds: dict[str, str], _: Any) -> Any:
    from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment
    from threatexchange.exchanges.impl.ncmec_api import NCMECCollabConfig

    from app.services import exchange_clients as clients

    collab = NCMECCollabConfig(
        name=name,
        environment=NCMECEnvironment[settings["environment"]],
        only_esp_ids=set(settings.get("only_esp_ids") or []),
    )
    return clients.NCMECExchange(collab, creds["user"], creds["password"], _base_url(settings))


def _build_stopncii(name: str, settings: dict[str, Any], creds: dict[str, str], _: Any) -> Any:
    from threatexchange.exchanges.clients.stopncii.api import StopNCIIAPI
    from threatexchange.exchanges.collab_config import CollaborationConfigBase

    from app.services import exchange_clients as clients

    client = StopNCIIAPI(
        creds["subscription_key"],
        creds["fetch_function_key"],
        base_url_override=_base_url(settings),
    )
    return clients.StopNCIIExchange(CollaborationConfigBase(name, "stop_ncii", True), client)


def _build_tat(name: str, settings: dict[str, Any], creds: dict[str, str], _: Any) -> Any:
    from app.services import exchange_clients as clients

    return clients.TATExchange(creds["username"], creds["password"], _base_url(settings))


def _build_te(name: str, settings: dict[str, Any], creds: dict[str, str], _: Any) -> Any:
    from threatexchange.exchanges.clients.fb_threatexchange.api import ThreatExchangeAPI
    from threatexchange.exchanges.impl.fb_threatexchange_api import FBThreatExchangeCollabConfig

    from app.services import exchange_clients as clients

    client = ThreatExchangeAPI(creds["api_token"], endpoint_override=_base_url(settings))
    collab = FBThreatExchangeCollabConfig(name=name, privacy_group=int(settings["privacy_group"]))
    return clients.ThreatExchangeExchange(client, collab)


def _build_list(name: str, settings: dict[str, Any], _: Any, access: HashListAccess) -> Any:
    from app.services.exchange_hash_list import HashListConfig, HashListExchange

    config = HashListConfig(name, location=settings["location"], format=settings.get("format", ""))
    return HashListExchange(config, access)


BASE_URL = Setting("base_url", "Server address", BASE_URL_HELP, type="url")
# The names of threatexchange's NCMECEnvironment (1.2.17), written out so that the admin pages
# need not import the library; tests/test_startup_imports.py keeps the two lists equal.
NCMEC_ENVIRONMENTS = (
    "Industry",
    "Industry_Exploitative",
    "LawEnforcement",
    "NGO",
    "Exploitative",
    "NGO_Generative_AI",
    "NGO_Generative_AI_Exploitative",
    "test_Industry",
    "test_Industry_Exploitative",
    "test_LawEnforcement",
    "test_NGO",
    "test_Exploitative",
    "test_NGO_Generative_AI",
    "test_NGO_Generative_AI_Exploitative",
)
ENVIRONMENTS = tuple((name, name.replace("_", " ")) for name in NCMEC_ENVIRONMENTS)

KINDS: dict[str, ExchangeKind] = {
    kind.name: kind
    for kind in (
        ExchangeKind(
            "ncmec",
            "NCMEC hash sharing",
            "Hashes of child sexual abuse material shared by NCMEC and its members (US).",
            (
                Setting("user", "User name", "Your NCMEC hash sharing API user.", required=True),
                Setting("password", "Password", required=True),
            ),
            (
                Setting(
                    "environment",
                    "Database",
                    "The NCMEC database your account reads.",
                    required=True,
                    type="choice",
                    choices=ENVIRONMENTS,
                ),
                Setting(
                    "only_esp_ids",
                    "Only from these members",
                    "NCMEC member (ESP) ids separated by commas; empty takes every member.",
                    type="ids",
                ),
                BASE_URL,
            ),
            _build_ncmec,
            ncmec_signals,
        ),
        ExchangeKind(
            "stopncii",
            "StopNCII.org",
            "PDQ hashes of intimate images that people asked StopNCII to protect.",
            (
                Setting("fetch_function_key", "FetchHashes function key", required=True),
                Setting(
                    "subscription_key",
                    "Subscription key",
                    "Your Azure API Management subscription key.",
                    required=True,
                ),
            ),
            (BASE_URL,),
            _build_stopncii,
            simple_signals({"pdq": "pdq"}),
        ),
        ExchangeKind(
            "tat",
            "Tech Against Terrorism (TCAP)",
            "Hashes of terrorist and violent extremist content from the TCAP archive.",
            (
                Setting("username", "TCAP user name", required=True),
                Setting("password", "TCAP password", required=True),
            ),
            (BASE_URL,),
            _build_tat,
            simple_signals(IMAGE_NAMES),
        ),
        ExchangeKind(
            "threatexchange",
            "Meta ThreatExchange",
            "Hashes shared in a ThreatExchange privacy group.",
            (
                Setting(
                    "api_token",
                    "App access token",
                    "“<app id>|<app secret>”.",
                    required=True,
                    pattern=TE_TOKEN,
                    pattern_help="An app access token looks like “<app id>|<app secret>”.",
                ),
            ),
            (
                Setting("privacy_group", "Privacy group id", required=True, type="integer"),
                Setting(
                    "base_url",
                    "Graph API address",
                    "Leave empty for "
                    "https://graph.facebook.com/v26.0. Set only for a proxy or a test server.",
                    type="url",
                ),
            ),
            _build_te,
            threatexchange_signals,
        ),
        ExchangeKind(
            "hash_list",
            "Hash list (file or URL)",
            "A list of hashes at a URL or in the hash-lists folder, read in full at every fetch.",
            (),
            (
                Setting(
                    "location",
                    "URL or file name",
                    "An http(s) URL, or the name of a file in the instance's hash-lists folder.",
                    required=True,
                    type="location",
                ),
                Setting(
                    "format",
                    "Format",
                    "Empty: recognised from the first line.",
                    type="choice",
                    choices=(
                        ("te", "threatexchange: “pdq <hash>” per line"),
                        ("csv", "CSV: signal_type,signal,note"),
                        ("hma", "HMA bank content (JSON lines)"),
                    ),
                ),
            ),
            _build_list,
            simple_signals(IMAGE_NAMES),
        ),
    )
}
