"""What a plugin is made of: ``Scanner`` and ``Action`` base classes and the values they exchange.

Import them from ``app.plugins``; they live here only to keep the manager's module short.
A plugin class declares, as class attributes, everything the app needs to know without running
it: its ``name`` (unique key), ``title`` and ``version``, its ``settings`` (which the admin pages
render and validate), and for scanners what they need and how to call them.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

SETTING_TYPES = ("string", "integer", "number", "boolean", "choice", "url", "multiline")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Setting:
    """One setting of a plugin, as the admin form shows and validates it.

    ``secret`` values are stored encrypted and never shown again; ``choices`` lists the values
    of a ``choice`` (or ``(value, text)`` pairs); ``min``/``max`` bound numbers.
    """

    name: str
    type: str = "string"
    default: Any = None
    secret: bool = False
    help: str = ""
    choices: Sequence[Any] | None = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(f"setting name {self.name!r} must be lowercase letters, digits, _")
        if self.type not in SETTING_TYPES:
            raise ValueError(f"setting {self.name!r}: type must be one of {SETTING_TYPES}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"setting {self.name!r} is a choice but lists no choices")

    @property
    def title(self) -> str:
        """The form label: ``label``, or the name in words."""
        return self.label or self.name.replace("_", " ").capitalize()

    def choice_values(self) -> list[str]:
        """The values a ``choice`` accepts, as text."""
        return [str(c[0] if isinstance(c, tuple | list) else c) for c in self.choices or []]


@dataclass(frozen=True)
class ConnectionResult:
    """What "Test connection" found: ``ok`` and a sentence for the admin."""

    ok: bool
    message: str


@dataclass(frozen=True)
class ScanOutcome:
    """A scanner's answer: a verdict, labels with scores, matches with distances, the raw reply.

    ``verdict`` is ``match`` (a known-bad hash or list), ``flag`` (a classifier thinks so),
    ``clear`` or ``error`` (the scanner answered but could not judge this image).
    """

    verdict: str
    labels: Sequence[Mapping[str, Any]] = ()
    matches: Sequence[Mapping[str, Any]] = ()
    raw: Any = None


@dataclass
class ScanContext:
    """What a scanner may look at: hashes, type, size, the bytes (lazily), the URL, its settings.

    ``timeout`` is the seconds the scanner has: pass it on to network calls (``requests``'
    ``timeout=``) so a slow vendor is cut off cleanly. ``attempt`` counts from 1.
    """

    sha256: str | None
    md5: str | None
    pdq: str | None
    pdq_quality: int | None
    mime: str | None
    size: int | None
    image_url: str | None
    settings: Mapping[str, Any]
    item_id: str | None = None
    attempt: int = 1
    timeout: float = 30.0
    loader: Callable[[], bytes] | None = field(default=None, repr=False)
    _data: bytes | None = field(default=None, repr=False)

    def data(self) -> bytes:
        """The image's bytes, read from the media store the first time they are asked for."""
        if self._data is None:
            if self.loader is None:
                raise LookupError("this item's image is not in the media store")
            self._data = self.loader()
        return self._data


class PluginBase(ABC):
    """What scanners and actions share: identity, declared settings, a connection test."""

    kind: ClassVar[str] = ""
    name: ClassVar[str]
    title: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    description: ClassVar[str] = ""
    settings: ClassVar[Sequence[Setting]] = ()  # a tuple keeps it immutable
    timeout: ClassVar[float] = 30.0  # seconds per call
    rate_limit: ClassVar[int | None] = None  # calls per minute, all workers together
    max_attempts: ClassVar[int | None] = None  # None: the JOB_MAX_ATTEMPTS setting
    enabled_by_default: ClassVar[bool] = False

    def test_connection(self, settings: Mapping[str, Any]) -> ConnectionResult:
        """Check the settings against the service (an authenticated no-op call, say)."""
        return ConnectionResult(True, "Nothing to test: this plugin does not connect anywhere.")


class Scanner(PluginBase):
    """Looks at an item and says what it sees. Subclass, set the attributes, write ``scan``.

    ``needs``: ``"bytes"`` (send the image) or ``"url"`` (send ``image_url``). ``local``: runs in
    this process without the network (a hash bank), so the pipeline runs it inline. ``fast``: quick
    enough for the synchronous ``/api/v1/check``.
    """

    kind = "scanner"
    needs: ClassVar[str] = "bytes"
    local: ClassVar[bool] = False
    fast: ClassVar[bool] = False

    @abstractmethod
    def scan(self, ctx: ScanContext) -> ScanOutcome:
        """Scan one image; raise on failure (the pipeline retries with backoff)."""


@dataclass(frozen=True)
class ActionContext:
    """What an action acts on: the item, the decision that triggered it, its settings."""

    item: Any
    decision: Any
    settings: Mapping[str, Any]
    attempt: int = 1
    timeout: float = 30.0


@dataclass(frozen=True)
class ActionOutcome:
    """How an action went: ``ok``, the other side's ``reference`` (a report id), the raw reply."""

    ok: bool
    reference: str | None = None
    message: str = ""
    raw: Any = None


class Action(PluginBase):
    """Does something after a decision: tell the platform, report, add to a bank."""

    kind = "action"

    @abstractmethod
    def run(self, ctx: ActionContext) -> ActionOutcome:
        """Carry the action out once; raise on a failure worth retrying. Must be idempotent."""


PluginClass = TypeVar("PluginClass", bound=PluginBase)


def check_plugin_class(cls: Any, base: type[PluginBase]) -> str | None:
    """Why ``cls`` cannot be installed as a ``base`` (a sentence), or None when it can."""
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return f"{cls!r} is not a subclass of {base.__name__}"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return f"{cls.__name__}.name must be lowercase letters, digits and _ (got {name!r})"
    if cls.__abstractmethods__:
        return f"{cls.__name__} does not implement {', '.join(sorted(cls.__abstractmethods__))}"
    if not cls.timeout or cls.timeout <= 0:
        return f"{cls.__name__}.timeout must be a positive number of seconds"
    if cls.rate_limit is not None and cls.rate_limit <= 0:
        return f"{cls.__name__}.rate_limit must be a positive number of calls a minute, or None"
    if issubclass(cls, Scanner) and cls.needs not in ("bytes", "url"):
        return f"{cls.__name__}.needs must be 'bytes' or 'url'"
    names = [setting.name for setting in cls.settings]
    if len(set(names)) != len(names):
        return f"{cls.__name__} declares a setting name twice"
    return None
