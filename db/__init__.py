"""The SQL store: SQLAlchemy models, the Store, read-only SQL and views."""

from naslab.db.models import VIEWS
from naslab.db.store import Store, StudyInfo, StudySummary, TrialRecord

__all__ = ["VIEWS", "Store", "StudyInfo", "StudySummary", "TrialRecord"]
