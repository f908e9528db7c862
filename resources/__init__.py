"""Dagster resources: configuration plus the heavy clients each stage needs."""

from resources.auditor import PrivacyAuditor
from resources.data_engine import DataEngine
from resources.model_store import BaseModelStore
from resources.pii_engine import PIIEngine
from resources.registry import MLflowRegistry
from resources.storage import CorpusStorage
from resources.trainer import DPTrainer

__all__ = [
    "BaseModelStore",
    "CorpusStorage",
    "DataEngine",
    "DPTrainer",
    "MLflowRegistry",
    "PIIEngine",
    "PrivacyAuditor",
]
