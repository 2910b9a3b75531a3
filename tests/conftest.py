"""Suite-wide settings.

Hypothesis runs derandomized by default, so the suite is deterministic in CI
(a property test cannot fail on one run and pass on the next); explore with
fresh random examples locally with ``pytest --hypothesis-profile=explore``.
"""
import shutil
import signal
import subprocess
import time

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("deterministic", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, max_examples=500)
settings.load_profile("deterministic")


@pytest.fixture
def pty_pair(tmp_path):
    """A linked pty pair from socat: (twin end, board end) paths; socat stopped afterwards."""
    socat = shutil.which("socat")
    assert socat, "socat is not installed: apt-get install socat (scripts/test.sh does it)"
    a, b = tmp_path / "twin-end", tmp_path / "board-end"
    proc = subprocess.Popen([socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (a.exists() and b.exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert a.exists() and b.exists(), "socat did not create the pty pair"
        yield str(a), str(b)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
