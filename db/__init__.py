"""The SQL store: SQLAlchemy models, the Store, read-only SQL and views."""
