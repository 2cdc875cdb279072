"""The threatexchange library's exchange clients, adjusted where the library needs it.

- NCMEC and Tech Against Terrorism hard-code their hosts (an enum of NCMEC environments, a class
  constant for TAT); the subclasses here take an optional base URL so an operator can go through
  a proxy and the tests can use a local fake. StopNCII and ThreatExchange accept one already.
- StopNCII: the library compares the hash value, not the hash's status, with Withdrawn and
  Deleted, so it never reports a withdrawal (threatexchange 1.2.17). We read ``hashStatus``.
- ThreatExchange: the library asserts when ``/threat_updates`` has nothing new (an empty page);
  we skip empty pages.
- StopNCII and TAT: the library drops record types it has no signal type for before we see them;
  we keep them under their own names, so fetches can count what they skipped, and TAT's MD5 and
  SHA-256 of images (the library keeps only video MD5s) reach image banks.
"""

from __future__ import annotations

import typing as t

from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.clients.fb_threatexchange.threat_updates import ThreatUpdateJSON
from threatexchange.exchanges.clients.ncmec import hash_api
from threatexchange.exchanges.clients.stopncii import api as stopncii
from threatexchange.exchanges.clients.techagainstterrorism import api as tat
from threatexchange.exchanges.impl.fb_threatexchange_api import (
    FBThreatExchangeCheckpoint,
    FBThreatExchangeIndicatorRecord,
    FBThreatExchangeSignalExchangeAPI,
)
from threatexchange.exchanges.impl.ncmec_api import NCMECCollabConfig, NCMECSignalExchangeAPI
from threatexchange.exchanges.impl.stop_ncii_api import (
    StopNCIICheckpoint,
    StopNCIISignalExchangeAPI,
    StopNCIISignalMetadata,
)
from threatexchange.exchanges.impl.techagainstterrorism_api import (
    TATCheckpoint,
    TATSignalExchangeAPI,
)
from threatexchange.signal_type.signal_base import SignalType

SimpleDelta = state.FetchDelta[tuple[str, str], t.Any, t.Any]
STOPNCII_TYPES = {
    stopncii.StopNCIISignalType.ImagePDQ: "pdq",
    stopncii.StopNCIISignalType.VideoMD5: "video_md5",
    stopncii.StopNCIISignalType.VideoTMK: "video_tmk",
    stopncii.StopNCIISignalType.Text: "text",
    stopncii.StopNCIISignalType.URL: "url",
}
STOPNCII_GONE = {stopncii.StopNCIICaseStatus.Withdrawn, stopncii.StopNCIICaseStatus.Deleted}
TAT_VIDEO_FILE_TYPES = {"mov", "m4v", "mp4", "webm", "avi", "mkv", "flv", "wmv", "3gp"}


class NCMECHashClient(hash_api.NCMECHashAPI):
    """NCMEC's hash sharing client, optionally at another base URL than the environment's."""

    def __init__(
        self,
        username: str,
        password: str,
        environment: hash_api.NCMECEnvironment,
        base_url: str | None = None,
    ) -> None:
        super().__init__(username, password, environment)
        if base_url:
            self._base_url = base_url.rstrip("/")


class NCMECExchange(NCMECSignalExchangeAPI):
    """NCMEC hash sharing through :class:`NCMECHashClient`."""

    def __init__(
        self, collab: NCMECCollabConfig, username: str, password: str, base_url: str | None
    ) -> None:
        super().__init__(collab, username, password)
        self.base_url = base_url

    def get_client(self, environment: hash_api.NCMECEnvironment) -> hash_api.NCMECHashAPI:
        """The client for ``environment``, at our base URL if one is set."""
        if not hash_api.is_valid_user_pass(self._username, self._password):
            raise ValueError("Set the NCMEC user name and password.")
        return NCMECHashClient(self._username, self._password, environment, self.base_url)


class StopNCIIExchange(StopNCIISignalExchangeAPI):
    """StopNCII.org, reporting withdrawn and deleted hashes as deletions."""

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: StopNCIICheckpoint | None,
    ) -> t.Iterator[SimpleDelta]:
        """One delta per page of ``FetchHashes``, checkpointed at the page's timestamp."""
        start = stopncii.StopNCIIAPI.DEFAULT_START_TIME
        if checkpoint is not None:
            start = checkpoint.update_time
        for page in self.api.fetch_hashes_iter(start_timestamp=start):
            updates: dict[tuple[str, str], StopNCIISignalMetadata | None] = {}
            for record in page.hashRecords:
                kind = STOPNCII_TYPES.get(record.signalType, record.signalType.value.lower())
                gone = record.hashStatus in STOPNCII_GONE
                updates[kind, record.hashValue] = (
                    None if gone else StopNCIISignalMetadata(record.CSPFeedbacks)
                )
            yield state.FetchDelta(updates, StopNCIICheckpoint.from_stopncii_fetch(page))


class TATHashClient(tat.TATHashListAPI):
    """Tech Against Terrorism's hash list client, optionally at another base URL."""

    def __init__(self, username: str, password: str, base_url: str | None = None) -> None:
        super().__init__(username, password)
        if base_url:
            self.BASE_URL = base_url.rstrip("/") + "/"  # type: ignore[misc]  # per instance


class TATExchange(TATSignalExchangeAPI):
    """Tech Against Terrorism, keeping image MD5 and SHA-256 hashes as well as PDQ."""

    def __init__(self, username: str, password: str, base_url: str | None) -> None:
        super().__init__(username, password)
        self.base_url = base_url

    def get_client(self) -> tat.TATHashListAPI:
        """The client, at our base URL if one is set."""
        return TATHashClient(self.username, self.password, self.base_url)

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: TATCheckpoint | None,
    ) -> t.Iterator[SimpleDelta]:
        """One delta per page of the hash list, checkpointed after the page's last entry."""
        after = checkpoint.checkpoint if checkpoint is not None else ""
        for page in self.get_client().fetch_hashes_iter(after):
            updates: dict[tuple[str, str], state.FetchedSignalMetadata | None] = {}
            for entry in page.results:
                algorithm = str(entry.algorithm).lower()
                video = str(entry.file_type).lower() in TAT_VIDEO_FILE_TYPES
                kind = f"video_{algorithm}" if video and algorithm != "pdq" else algorithm
                metadata = None if entry.deleted else state.FetchedSignalMetadata()
                updates[kind, str(entry.hash_digest)] = metadata
            progress = TATCheckpoint(page.checkpoint) if page.checkpoint else checkpoint
            yield state.FetchDelta(updates, progress)


class ThreatExchangeExchange(FBThreatExchangeSignalExchangeAPI):
    """Meta ThreatExchange ``/threat_updates``, tolerating a page with nothing new."""

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: FBThreatExchangeCheckpoint | None,
    ) -> t.Iterator[SimpleDelta]:
        """One delta per page of updates, checkpointed at the newest update seen."""
        start = None if checkpoint is None else checkpoint.update_time
        cursor = self.client.get_threat_updates(
            self.collab.privacy_group,
            start_time=start,
            page_size=100,
            fields=ThreatUpdateJSON.te_threat_updates_fields(),
            decode_fn=ThreatUpdateJSON,
        )
        highest = start or 0
        for batch in cursor:
            if not batch:
                continue
            highest = max(highest, *(update.time for update in batch))
            updates = {
                (update.threat_type, update.indicator): (
                    FBThreatExchangeIndicatorRecord.from_threatexchange_json(
                        self.client.app_id, update
                    )
                )
                for update in batch
            }
            yield state.FetchDelta(updates, FBThreatExchangeCheckpoint(highest))
