"""Suite-wide settings.

Hypothesis runs derandomized by default, so the suite is deterministic in CI
(a property test cannot fail on one run and pass on the next); explore with
fresh random examples locally with ``pytest --hypothesis-profile=explore``.
"""
from hypothesis import HealthCheck, settings

settings.register_profile("deterministic", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile("deterministic")
