"""A hash list as an exchange: a file of hashes at a URL or in the instance's hash-lists folder.

threatexchange's own ``local_file`` exchange reads only local files in its ``<type> <hash>``
format, and never notices a line that was removed. This one reads a URL (through the SSRF-safe
fetcher) or a file, in any format bank imports read (threatexchange, CSV or HMA JSON, through
``bank_io``), and reports a full snapshot with ``NoCheckpointing``: every fetch is complete, so
hashes no longer in the list are taken out of the bank (see ``exchange_store.sweep``).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPIWithSimpleUpdates
from threatexchange.signal_type.signal_base import SignalType

from app.services import bank_io
from app.services.fetch import fetch_image

HASH_LIST_DIR = "hash-lists"
MAX_LIST_BYTES = 256 * 1024 * 1024  # about 3.5 million PDQ lines in threatexchange format


@dataclass
class HashListConfig(CollaborationConfigWithDefaults):
    """Where the list is and, optionally, its format (``te``, ``csv`` or ``hma``)."""

    location: str = ""
    format: str = ""


@dataclass(frozen=True)
class HashListAccess:
    """How this server may read lists: its folder of list files and its URL fetch limits."""

    directory: Path
    allow_networks: tuple[str, ...] = ()
    connect_timeout: float = 5.0
    total_timeout: float = 120.0


@dataclass
class HashListExchange(
    SignalExchangeAPIWithSimpleUpdates[
        HashListConfig, state.NoCheckpointing, state.FetchedSignalMetadata
    ]
):
    """Reads the whole list on every fetch; ``skipped`` counts its lines we could not use."""

    collab: HashListConfig
    access: HashListAccess
    skipped: int = field(default=0)

    @classmethod
    def get_name(cls) -> str:
        """The exchange's name in threatexchange terms."""
        return "hash_list"

    @staticmethod
    def get_config_cls() -> type[HashListConfig]:
        """The collaboration settings class."""
        return HashListConfig

    @staticmethod
    def get_checkpoint_cls() -> type[state.NoCheckpointing]:
        """Never resumable: each fetch reads the whole list."""
        return state.NoCheckpointing

    @staticmethod
    def get_record_cls() -> type[state.FetchedSignalMetadata]:
        """Lines carry no metadata beyond the hash."""
        return state.FetchedSignalMetadata

    @classmethod
    def for_collab(cls, collab: HashListConfig) -> HashListExchange:
        """Without an app to say otherwise: files in ./hash-lists, public URLs only."""
        return cls(collab, HashListAccess(Path(HASH_LIST_DIR)))

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: state.NoCheckpointing | None,
    ) -> t.Iterator[state.FetchDelta[tuple[str, str], t.Any, state.NoCheckpointing]]:
        """The whole list as one delta."""
        text = self.read().decode("utf-8-sig", errors="replace")
        lines = text.splitlines(keepends=True)
        first = next((line for line in lines if line.strip()), "")
        chosen = bank_io.Format(self.collab.format or bank_io.detect_format(first))
        report = bank_io.ImportReport(chosen.value)
        parse = {
            bank_io.Format.CSV: bank_io.parse_csv,
            bank_io.Format.TE: bank_io.parse_te,
            bank_io.Format.HMA: bank_io.parse_hma,
        }[chosen]
        updates: dict[tuple[str, str], state.FetchedSignalMetadata | None] = {
            (entry.signal_type, entry.signal): state.FetchedSignalMetadata()
            for entry in parse(lines, report, "")
        }
        self.skipped = report.error_count + report.skipped
        yield state.FetchDelta(updates, state.NoCheckpointing())

    def read(self) -> bytes:
        """The list's bytes, from its URL or from its file in the hash list folder."""
        location = self.collab.location.strip()
        if location.startswith(("http://", "https://")):
            return fetch_image(
                location,
                max_bytes=MAX_LIST_BYTES,
                connect_timeout=self.access.connect_timeout,
                total_timeout=self.access.total_timeout,
                allow_networks=self.access.allow_networks,
            ).data
        return list_file(self.access.directory, location).read_bytes()


def list_file(directory: Path, name: str) -> Path:
    """The file called ``name`` in ``directory``; ValueError for a name that leads elsewhere."""
    folder = directory.resolve()
    path = (folder / name).resolve()
    if not name or folder not in path.parents:
        raise ValueError(f"Put the list in {folder} and give its file name, e.g. “list.txt”.")
    if not path.is_file():
        raise FileNotFoundError(f"There is no file “{name}” in {folder}.")
    return path
