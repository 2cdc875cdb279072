"""SQLAlchemy 2.0 typed models, one module per aggregate; importing this registers them all."""

from app.models.action import (
    ActionConfig,
    ActionRun,
    ItemHold,
    QuarantinedMedia,
    WebhookDelivery,
)
from app.models.audit import AuditEvent, AuditHead, AuditVerification
from app.models.bank import Bank, BankChange, BankEntry
from app.models.exchange import Exchange, ExchangeRun, ExchangeSignal
from app.models.item import Item
from app.models.job import Job, WorkerProcess
from app.models.ops import MediaPurge, PurgeRun, QueueSample
from app.models.plugin import PluginConfig
from app.models.report import AuthorityReport, ReportStatus
from app.models.review import Decision, ExposureDay, Reveal, UserPreference
from app.models.rule import Rule, RuleHit
from app.models.scan import ScannerBucket, ScanResult
from app.models.source import ApiToken, Source, SourceKind
from app.models.user import Invitation, LoginAttempt, RecoveryCode, User
from app.models.webhook import ReceivedWebhook, WebhookReceipt

__all__ = [
    "ActionConfig",
    "ActionRun",
    "ApiToken",
    "AuditEvent",
    "AuditHead",
    "AuditVerification",
    "AuthorityReport",
    "Bank",
    "BankChange",
    "BankEntry",
    "Decision",
    "Exchange",
    "ExchangeRun",
    "ExchangeSignal",
    "ExposureDay",
    "Invitation",
    "Item",
    "ItemHold",
    "Job",
    "LoginAttempt",
    "MediaPurge",
    "PluginConfig",
    "PurgeRun",
    "QuarantinedMedia",
    "QueueSample",
    "ReceivedWebhook",
    "RecoveryCode",
    "ReportStatus",
    "Reveal",
    "Rule",
    "RuleHit",
    "ScanResult",
    "ScannerBucket",
    "Source",
    "SourceKind",
    "User",
    "UserPreference",
    "WebhookDelivery",
    "WebhookReceipt",
    "WorkerProcess",
]
