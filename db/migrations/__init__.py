"""Alembic migrations of the naslab schema (applied by :mod:`naslab.db.migrate`)."""
