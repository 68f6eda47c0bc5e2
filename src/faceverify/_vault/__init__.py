"""The template vault: consent-bound, encrypted, expiring face templates, one subject at a time.

It never sees an image; it stores and releases embeddings (vectors) under the
rules in ``docs/privacy.md``. One URL selects its engine (SQLite or PostgreSQL);
the key store is a second database, kept apart by design.
"""

from ._audit import AuditEntry, AuditLog, AuditSink, ChainReport, NullAudit
from ._consent import ConsentEvidence, ConsentRecord
from ._engine import Engine, open_engine
from ._keys import ENV_VAR, KeyStore, MasterKey, init_master_key, load_master_key
from ._lockout import EnumerationPolicy, LockoutPolicy
from ._retention import DEFAULT_RETENTION, MAX_RETENTION, RetentionPolicy
from ._sessions import SessionSlot, SessionStore
from ._store import LockoutState, LockoutStore, StoredSubject, TemplateStore
from ._template import FORMAT_VERSION, OpenedTemplate, TemplateHeader, needs_reenroll, read_header
from ._vault import LIVE_PURPOSES, DeletionReceipt, Matchable, Vault, default_keys_location

__all__ = [
    "DEFAULT_RETENTION",
    "ENV_VAR",
    "FORMAT_VERSION",
    "LIVE_PURPOSES",
    "MAX_RETENTION",
    "AuditEntry",
    "AuditLog",
    "AuditSink",
    "ChainReport",
    "ConsentEvidence",
    "ConsentRecord",
    "DeletionReceipt",
    "Engine",
    "EnumerationPolicy",
    "KeyStore",
    "LockoutPolicy",
    "LockoutState",
    "LockoutStore",
    "MasterKey",
    "Matchable",
    "NullAudit",
    "OpenedTemplate",
    "RetentionPolicy",
    "SessionSlot",
    "SessionStore",
    "StoredSubject",
    "TemplateHeader",
    "TemplateStore",
    "Vault",
    "default_keys_location",
    "init_master_key",
    "load_master_key",
    "needs_reenroll",
    "open_engine",
    "read_header",
]
