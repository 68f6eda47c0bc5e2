"""The template vault: consent-bound, encrypted, expiring face templates, one subject at a time.

It never sees an image; it stores and releases embeddings (vectors) under the
rules in ``docs/privacy.md``.
"""

from ._audit import AuditEntry, AuditLog, AuditSink, ChainReport, NullAudit
from ._consent import ConsentEvidence, ConsentRecord
from ._keys import ENV_VAR, KeyStore, MasterKey, init_master_key, load_master_key
from ._lockout import EnumerationPolicy, LockoutPolicy
from ._retention import DEFAULT_RETENTION, MAX_RETENTION, RetentionPolicy
from ._sqlite import SQLiteTemplateStore
from ._store import LockoutState, StoredSubject, TemplateStore
from ._template import FORMAT_VERSION, OpenedTemplate, TemplateHeader, needs_reenroll, read_header
from ._vault import DeletionReceipt, Matchable, Vault

__all__ = [
    "DEFAULT_RETENTION",
    "ENV_VAR",
    "FORMAT_VERSION",
    "MAX_RETENTION",
    "AuditEntry",
    "AuditLog",
    "AuditSink",
    "ChainReport",
    "ConsentEvidence",
    "ConsentRecord",
    "DeletionReceipt",
    "EnumerationPolicy",
    "KeyStore",
    "LockoutPolicy",
    "LockoutState",
    "MasterKey",
    "Matchable",
    "NullAudit",
    "OpenedTemplate",
    "RetentionPolicy",
    "SQLiteTemplateStore",
    "StoredSubject",
    "TemplateHeader",
    "TemplateStore",
    "Vault",
    "init_master_key",
    "load_master_key",
    "needs_reenroll",
    "read_header",
]
