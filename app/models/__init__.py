"""SQLAlchemy 2.0 typed models, one module per aggregate. Importing this package registers them all."""

from app.models.audit import AuditEvent, AuditHead
from app.models.bank import Bank, BankChange, BankEntry
from app.models.item import Item
from app.models.job import Job, WorkerProcess
from app.models.plugin import PluginConfig
from app.models.review import Decision, ExposureDay, Reveal, UserPreference
from app.models.scan import ScannerBucket, ScanResult
from app.models.source import ApiToken, Source, SourceKind
from app.models.user import Invitation, LoginAttempt, RecoveryCode, User

__all__ = [
    "Bank",
    "BankChange",
    "BankEntry",
    "ApiToken",
    "Decision",
    "ExposureDay",
    "Reveal",
    "UserPreference",
    "Item",
    "Source",
    "SourceKind",
    "AuditEvent",
    "AuditHead",
    "Invitation",
    "Job",
    "LoginAttempt",
    "PluginConfig",
    "ScanResult",
    "ScannerBucket",
    "RecoveryCode",
    "User",
    "WorkerProcess",
]
