"""Stores: where incidents' events and their outbox are kept.

:class:`MemoryStore` for tests and demos, :class:`SQLiteStore` (one file) as the embedded default.
All implement :class:`Store` and pass the same contract tests.
"""

from incident_flow.store.base import Delivery, DeliveryStatus, Store
from incident_flow.store.memory import MemoryStore
from incident_flow.store.sqlite import SQLiteStats, SQLiteStore

__all__ = ["Delivery", "DeliveryStatus", "MemoryStore", "SQLiteStats", "SQLiteStore", "Store"]
