"""The web dashboard: a read-only app over a naslab store (``naslab dashboard``)."""
