"""Hypothesis profiles: ``ci`` (the default; fast) and ``thorough`` (``HYPOTHESIS_PROFILE=thorough``)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
