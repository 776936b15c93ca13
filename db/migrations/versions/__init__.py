"""The revisions, oldest first: ``0001`` (the first released schema), ``0002``, ..."""
