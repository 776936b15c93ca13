"""The SQL store: SQLAlchemy models, the Store and its parts, migrations, transfer."""

from naslab.db.models import VIEWS
from naslab.db.protocol import Claim, ClaimContext, ClaimOutcome
from naslab.db.records import StudyInfo, StudySpec, StudySummary, TrialRecord
from naslab.db.store import Store

__all__ = [
    "VIEWS",
    "Claim",
    "ClaimContext",
    "ClaimOutcome",
    "Store",
    "StudyInfo",
    "StudySpec",
    "StudySummary",
    "TrialRecord",
]
