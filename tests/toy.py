"""A toy space's architectures, studies and results for store-level tests: the
helpers of the Store contract suite (:mod:`naslab.testing.stores`) under short names."""

from __future__ import annotations

from naslab.testing.stores import STUDY_DEFAULTS, new_study
from naslab.testing.stores import toy_arch as make_arch
from naslab.testing.stores import toy_result as result

__all__ = ["STUDY_DEFAULTS", "make_arch", "new_study", "result"]
