"""Shared pytest setup: Hypothesis profiles (pick with HYPOTHESIS_PROFILE or the flag)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Verbosity, settings

# dev: quick enough to run on every save; finds most scheduling bugs.
settings.register_profile("dev", max_examples=60, deadline=None)
# ci: more examples and no deadline, since CI machines are shared and slower.
settings.register_profile(
    "ci",
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
# debug: few examples, verbose output, for reading a shrunk counterexample.
settings.register_profile("debug", max_examples=10, deadline=None, verbosity=Verbosity.verbose)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
