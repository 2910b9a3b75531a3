"""`twin run --mavlink-out udp:...` is seen by a MAVLink client we did not write (pymavlink's mavutil)."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymavlink import mavutil

import pytest

from firmware_bridge.dialect import register_with_mavutil
from firmware_bridge.transports.udp_out import parse_udp_url


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mavutil_receives_heartbeat_and_sensor_frames(tmp_path):
    port = free_udp_port()
    dialect = register_with_mavutil()
    listener = mavutil.mavlink_connection(f"udpin:127.0.0.1:{port}", dialect=dialect)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", "--duration", "20s", "--pace", "10",
                             "--mavlink-out", f"udp:127.0.0.1:{port}", "--out", str(tmp_path / "run"),
                             "--no-plots", "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = {}
    deadline = time.monotonic() + 90
    try:
        while not {"HEARTBEAT", "SC_THERMAL_FRAME", "SC_ACTUATOR_COMMAND"} <= set(seen) \
                and time.monotonic() < deadline:
            msg = listener.recv_match(blocking=True, timeout=1.0)
            if msg is not None:
                seen.setdefault(msg.get_type(), msg)
    finally:
        proc.wait(timeout=60)
        listener.close()
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert "HEARTBEAT" in seen and "SC_THERMAL_FRAME" in seen
    assert -80 <= seen["SC_THERMAL_FRAME"].t_tpu0_c <= 150


@pytest.mark.parametrize("bad", ["udp:localhost", "tcp:1.2.3.4:5", "udp:host:99999", "14550"])
def test_bad_udp_urls_are_refused(bad):
    with pytest.raises(ValueError, match="udp:HOST:PORT"):
        parse_udp_url(bad)
