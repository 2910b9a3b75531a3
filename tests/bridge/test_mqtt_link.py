"""MqttLink against a real mosquitto on 127.0.0.1, started from the shipped broker files."""
import asyncio
import os
import signal
import ssl
import subprocess
import threading
import time

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError

from firmware_bridge.broker import BrokerTls, BrokerUser, write_broker_files
from firmware_bridge.errors import (
    BridgeInitError,
    BridgeOperationError,
    LinkLost,
    SecurityError,
)
from firmware_bridge.transports import Backoff, Transport
from firmware_bridge.transports.mqtt_link import MqttLink
from firmware_bridge.transports.mqtt_wire import SEQ_PREFIX, topic_for
from tests.bridge.mqtt_broker import PASSWORDS, MosquittoBroker, TcpRelay

HANG_GUARD_S = 40  # turns a hang into a failure; never a speed assertion
SAT = "sat1"


def run(coro_fn, *args):
    """Run a test body on a fresh loop; fail on any error the loop's exception handler saw."""
    errors, threads = [], threading.active_count()

    async def body():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        async with asyncio.timeout(HANG_GUARD_S):
            await coro_fn(*args)
        await asyncio.sleep(0)    # cancellations a link scheduled on close
        assert asyncio.all_tasks() == {asyncio.current_task()}, "a task outlived its link"
    asyncio.run(body())
    assert errors == []
    assert threading.active_count() == threads


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def broker(tmp_path):
    b = MosquittoBroker(tmp_path)
    try:
        b.start()
        yield b
    finally:
        b.close()
        assert not any(alive(pid) for pid in b.pids), "a mosquitto outlived its test"


def link(broker_or_port, role, *, user=None, sat_id=SAT, **kw) -> MqttLink:
    port = broker_or_port if isinstance(broker_or_port, int) else broker_or_port.port
    user = user or role
    kw.setdefault("backoff", Backoff(0.01, 0.2))
    kw.setdefault("connect_timeout", 2.0)
    return MqttLink("127.0.0.1", port, sat_id=sat_id, role=role, username=user, password=PASSWORDS[user], **kw)


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.005)


async def recv_n(lk: MqttLink, n: int) -> list[bytes]:
    return [await lk.recv() for _ in range(n)]


def frames(start: int, stop: int) -> list[bytes]:
    return [b"\xfd" + i.to_bytes(4, "big") * 8 for i in range(start, stop)]


def test_messages_both_ways_at_qos1_with_status_and_retained_state(broker):
    async def body():
        async with link(broker, "board") as board:
            await board.publish_state(b"state-1")
            await board.publish_state(b"state-2")
            async with link(broker, "twin") as twin:
                assert isinstance(twin, Transport) and twin.state == board.state == "up"
                assert twin.name == f"mqtt:127.0.0.1:{broker.port}/{SAT}/twin"
                assert twin.counters.extra["tcp_nodelay"] == board.counters.extra["tcp_nodelay"] == 1
                for f in frames(0, 50):
                    await twin.send(f)
                assert await recv_n(board, 50) == frames(0, 50)
                for f in frames(50, 100):
                    await board.send(f)
                assert await recv_n(twin, 50) == frames(50, 100)
                await until(lambda: twin.peer_online and board.peer_online and twin.last_state)
                assert twin.last_state == b"state-2"      # retained, delivered on subscribe, prefix stripped
                c = twin.counters
                assert (c.chunks_out, c.chunks_in, c.link_lost, c.extra["duplicates"]) == (50, 50, 0, 0)
                assert c.bytes_out == sum(map(len, frames(0, 50))) and c.last_rx_monotonic > 0
                with pytest.raises(BridgeOperationError):
                    await twin.publish_state(b"not the twin's to say")
            await until(lambda: board.peer_online is False)   # the twin said "offline" on close
        assert board.state == "closed"
        with pytest.raises(BridgeOperationError):
            await board.recv()
    run(body)


def test_mosquitto_sub_sees_telemetry_on_the_documented_topic(broker):
    """The real client, as the observer user: topic, then the 8-byte sequence, then the frame untouched."""
    frame = bytes(range(40))

    async def body():
        sub = await asyncio.create_subprocess_exec(
            "mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "observer",
            "-P", PASSWORDS["observer"], "-t", f"suncatcher/{SAT}/#", "-T", f"suncatcher/{SAT}/status/#",
            "-C", "1", "-F", "MSG %t %x", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            async with link(broker, "board") as board:
                async def stream():      # a board streams; mosquitto_sub takes the first frame after it subscribed
                    while True:
                        await board.send(frame)
                        await asyncio.sleep(0.02)
                streaming = asyncio.create_task(stream())
                out, _ = await sub.communicate()
                streaming.cancel()
                await asyncio.gather(streaming, return_exceptions=True)
        finally:
            if sub.returncode is None:
                sub.kill()
                await sub.wait()
        assert sub.returncode == 0 and not alive(sub.pid)
        _, topic, payload = out.decode().split()
        data = bytes.fromhex(payload)
        assert topic == topic_for(SAT, "tlm") == f"suncatcher/{SAT}/tlm"
        assert data[SEQ_PREFIX.size:] == frame
        assert abs(SEQ_PREFIX.unpack_from(data)[0] - time.time_ns() // 1000) < 60e6   # counts on from wall-clock µs
    run(body)


async def store_saved(broker) -> None:
    """Returns once the broker has saved its store after every PUBACK already received.

    mosquitto saves (autosave_on_changes) at the end of the loop iteration that
    made the change, and a CONNECT sent now is read in a later iteration.
    """
    async with aiomqtt.Client("127.0.0.1", broker.port, username="observer", password=PASSWORDS["observer"],
                              identifier="barrier"):
        pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_broker_restart_loses_no_acknowledged_command_and_drops_redelivered_ones(broker, sig):
    """Commands in flight to the board (its PUBACKs swallowed) and commands queued while it was away
    both survive the broker's restart; the in-flight ones come again and are dropped by sequence."""
    async def body():
        async with TcpRelay(broker.host, broker.port) as relay, link(relay.port, "board") as board, \
                link(broker, "twin") as twin:
            relay.blackhole = True
            for f in frames(0, 10):
                await twin.send(f)
            assert await recv_n(board, 10) == frames(0, 10)       # delivered, never acknowledged
            relay.refuse = True
            relay.cut()
            with pytest.raises(LinkLost):
                await board.recv()
            await until(lambda: twin.peer_online is False)        # the board's last will
            for f in frames(10, 20):
                await twin.send(f)                                # queued in the board's session
            await store_saved(broker)
            broker.restart(sig)
            relay.blackhole = relay.refuse = False
            with pytest.raises(LinkLost):
                await twin.recv()
            with pytest.raises(LinkLost):
                await twin.send(b"while down")                    # refused, not queued: state is down
            await twin.wait_state("up", timeout=HANG_GUARD_S)
            for f in frames(20, 25):
                await twin.send(f)
            assert await recv_n(board, 15) == frames(10, 25)      # in order, none lost, none twice
            await until(lambda: twin.peer_online)
            assert board.counters.extra["duplicates"] == 10
            assert twin.counters.link_lost == board.counters.link_lost == 1
            assert twin.counters.reconnects == board.counters.reconnects == 1
            assert not board._inbox.data
    run(body)


def test_broker_hang_is_detected_within_two_keepalives_and_the_link_recovers(broker):
    keepalive = 2

    async def body():
        async with link(broker, "board", keepalive=keepalive, connect_timeout=1.0) as board, \
                link(broker, "twin", keepalive=keepalive, connect_timeout=1.0) as twin:
            await twin.send(b"before")
            assert await board.recv() == b"before"
            broker.pause()
            t0 = time.monotonic()
            await twin.wait_state("down", timeout=HANG_GUARD_S)
            hung_for = time.monotonic() - t0
            # paho pings after `keepalive` s of silence and gives up `keepalive` s later, on a 1 s tick
            assert hung_for <= 2 * keepalive + 2, hung_for
            with pytest.raises(LinkLost):
                await twin.recv()
            broker.resume()
            await twin.wait_state("up", timeout=HANG_GUARD_S)
            await board.wait_state("up", timeout=HANG_GUARD_S)
            await twin.send(b"after")
            try:
                got = await board.recv()
            except LinkLost:         # the board's own keepalive may or may not have fired before SIGCONT
                got = await board.recv()
            assert got == b"after" and twin.counters.link_lost == 1 and board.counters.link_lost <= 1
    run(body)


@pytest.mark.parametrize("fault", ["hung", "gone"])
def test_closing_while_reconnecting_leaves_nothing_behind(broker, fault):
    """Closed mid-reconnect (waiting for a CONNACK from a frozen broker, or in backoff): no task, thread or socket stays."""
    async def body():
        fds = len(os.listdir("/proc/self/fd"))
        lk = link(broker, "twin", keepalive=1, connect_timeout=30.0)
        async with lk:
            broker.pause() if fault == "hung" else broker.kill()
            await lk.wait_state("down", timeout=HANG_GUARD_S)
            await asyncio.sleep(0.3)                          # a reconnect attempt is under way
        assert lk.state == "closed" and lk._task is None
        assert len(os.listdir("/proc/self/fd")) == fds
    run(body)


def test_wrong_password_is_a_one_line_init_error(broker):
    async def body():
        lk = MqttLink("127.0.0.1", broker.port, sat_id=SAT, role="twin", username="twin", password="wrong")
        with pytest.raises(BridgeInitError) as err:
            async with lk:
                pass
        msg = str(err.value)
        assert "\n" not in msg and "refused login as 'twin'" in msg and err.value.link == lk.name
        assert isinstance(err.value.__cause__, MqttConnectError)
        assert lk.state == "closed"
        with pytest.raises(BridgeInitError, match="cannot connect"):   # nothing listening there
            async with link(broker.port + 1 if broker.port < 65535 else 1, "twin"):
                pass
    run(body)


def test_a_login_refused_on_reconnect_leaves_the_link_visibly_broken(broker):
    async def body():
        async with link(broker, "board") as board:
            users = [BrokerUser(n, "rotated" if n == "board" else pw, n) for n, pw in PASSWORDS.items()]
            write_broker_files(broker.config.dir, broker.port, users, persistence_dir=broker.config.persistence_dir)
            broker.restart()
            with pytest.raises(LinkLost):
                await board.recv()
            with pytest.raises(BridgeInitError, match="refused login as 'board'"):
                await board.recv()                  # no endless retrying behind the owner's back
            with pytest.raises(BridgeInitError):
                await board.send(b"x")
            assert board.state == "down" and board.counters.reconnects == 0
    run(body)


async def rogue(broker, user: str, name: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", broker.port, username=user, password=PASSWORDS[user], identifier=name,
                          protocol=aiomqtt.ProtocolVersion.V5)


def test_acl_violations_never_reach_the_receiving_side(broker):
    """Right credentials, wrong direction: the broker drops them; the receivers see only the real traffic."""
    async def body():
        async with link(broker, "board") as board, link(broker, "twin") as twin:
            async with await rogue(broker, "board", "rogue-board") as rb, await rogue(broker, "twin", "rogue-twin") as rt:
                await rb.publish(topic_for(SAT, "cmd"), SEQ_PREFIX.pack(1) + b"forged command", qos=1)
                await rt.publish(topic_for(SAT, "tlm"), SEQ_PREFIX.pack(1) + b"forged telemetry", qos=1)
                await rt.publish(topic_for(SAT, "state"), SEQ_PREFIX.pack(1) + b"forged state", qos=1, retain=True)
                await rt.publish(topic_for(SAT, "status/board"), b"offline", qos=1, retain=True)
            await twin.send(b"real command")
            await board.send(b"real telemetry")
            assert await board.recv() == b"real command"       # the forged one, published first, never came
            assert await twin.recv() == b"real telemetry"
            assert board.counters.chunks_in == twin.counters.chunks_in == 1
            assert twin.last_state is None and twin.peer_online is True
            assert board.counters.extra["bad_payload"] == twin.counters.extra["unexpected_topic"] == 0
    run(body)


def test_a_revoked_right_raises_security_error_in_send_and_nothing_arrives(broker):
    """The publisher learns of an ACL refusal from the MQTT 5 PUBACK reason code, which aiomqtt drops."""
    async def body():
        async with link(broker, "board") as board, link(broker, "twin") as twin:
            acl = broker.config.acl_path
            acl.write_text(acl.read_text().replace("topic write suncatcher/+/cmd\n", ""))
            os.kill(broker.proc.pid, signal.SIGHUP)           # mosquitto reloads its ACL
            sent = []
            with pytest.raises(SecurityError, match="ACL refused publish to suncatcher/sat1/cmd as 'twin'"):
                for i in range(100_000):                     # until the reload took effect
                    await twin.send(b"%d" % i)
                    sent.append(b"%d" % i)
            assert twin.counters.extra["acl_denied"] == 1 and twin.state == "up"
            await board.send(b"ping")                        # the other direction is still allowed
            assert await twin.recv() == b"ping"
            assert await recv_n(board, len(sent)) == sent and not board._inbox.data
    run(body)


def test_a_link_with_another_roles_credentials_cannot_open(broker):
    async def body():
        with pytest.raises(BridgeInitError, match="ACL refused publish to suncatcher/sat1/status/twin") as err:
            async with link(broker, "twin", user="board"):
                pass
        assert "\n" not in str(err.value)
    run(body)


def test_untrusted_payloads_are_counted_and_dropped(broker):
    async def body():
        async with link(broker, "twin") as twin:
            async with await rogue(broker, "board", "rogue-board") as rb:
                await rb.publish(topic_for(SAT, "status/board"), b"\xff garbage", qos=1)
                for payload in (b"short", b"", SEQ_PREFIX.pack(5) + b"first", SEQ_PREFIX.pack(5) + b"replayed",
                                SEQ_PREFIX.pack(6) + b"second"):
                    await rb.publish(topic_for(SAT, "tlm"), payload, qos=1)
            assert await recv_n(twin, 2) == [b"first", b"second"]
            extra = twin.counters.extra
            assert (extra["bad_payload"], extra["duplicates"], twin.counters.chunks_in) == (2, 1, 2)
            assert twin.peer_online is None and twin.state == "up"    # "garbage" is no status
    run(body)


def test_the_session_keeps_commands_for_an_absent_board_and_clean_start_drops_them(broker):
    async def body():
        async with link(broker, "twin") as twin:
            async with link(broker, "board"):
                pass                                              # the board's session now exists
            for f in frames(0, 3):
                await twin.send(f)
            async with link(broker, "board") as board:
                assert await recv_n(board, 3) == frames(0, 3)
            for f in frames(3, 6):
                await twin.send(f)                                # stale by the time a fresh run starts
            async with link(broker, "board", clean_start=True) as board:
                await twin.send(b"fresh")
                assert await board.recv() == b"fresh" and not board._inbox.data
    run(body)


def test_a_telemetry_flood_keeps_the_newest_and_counts_the_drops(broker):
    async def body():
        async with link(broker, "twin", rx_limit=100) as twin, link(broker, "board") as board:
            for f in frames(0, 300):                              # the twin reads nothing meanwhile
                await board.send(f)
            await until(lambda: twin.counters.chunks_in == 300)
            assert twin.counters.extra["dropped_in"] == 200
            assert await recv_n(twin, 100) == frames(200, 300) and not twin._inbox.data
    run(body)


@pytest.fixture
def tls_files(tmp_path):
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    d = tmp_path / "pki"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for cmd in (["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca"],
                ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
                ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "server.pem", "-days", "2", "-extfile", "san.ext"]):
        subprocess.run(["openssl", *cmd], cwd=d, check=True, capture_output=True)
    return BrokerTls(cafile=d / "ca.pem", certfile=d / "server.pem", keyfile=d / "server.key")


def test_tls_both_ways_and_an_untrusted_broker_is_an_init_error(tmp_path, tls_files):
    b = MosquittoBroker(tmp_path, tls=tls_files)

    async def body():
        ctx = ssl.create_default_context(cafile=str(tls_files.cafile))
        url = f"mqtts://127.0.0.1:{b.port}"
        async with MqttLink(url, sat_id=SAT, role="twin", username="twin", password=PASSWORDS["twin"], tls=ctx) as twin, \
                MqttLink(url, sat_id=SAT, role="board", username="board", password=PASSWORDS["board"],
                         tls=ctx) as board:
            assert twin.port == b.port and twin.counters.extra["tcp_nodelay"] == 1
            await twin.send(b"over tls")
            assert await board.recv() == b"over tls"
            await board.send(b"back over tls")
            assert await twin.recv() == b"back over tls"
        with pytest.raises(BridgeInitError, match="CERTIFICATE_VERIFY_FAILED"):
            async with MqttLink(url, sat_id=SAT, role="twin", username="twin", password=PASSWORDS["twin"]):
                pass                                              # the system CAs do not know our test CA
    try:
        b.start()
        run(body)
    finally:
        b.close()
    assert not any(alive(pid) for pid in b.pids)


def test_no_broker_process_outlives_the_helper_whatever_state_it_was_left_in(tmp_path):
    b = MosquittoBroker(tmp_path)
    try:
        b.start()
        b.restart(signal.SIGKILL)
        b.restart(signal.SIGTERM)
        b.pause()                                                 # a frozen broker must die too
    finally:
        b.close()
    assert len(b.pids) == 3 and not any(alive(pid) for pid in b.pids)
    assert not b.config.persistence_dir.exists()                  # the tmpfs store went with it


def test_broker_files_refuse_bad_input_and_keep_secrets_private(tmp_path):
    for bad in (BrokerUser("x", "pw", "admin"), BrokerUser("two words", "pw", "twin"),
                BrokerUser("b", "pw", "board", sat_ids=("sat/1",)), BrokerUser("b", "pw", "board", sat_ids=("#",))):
        with pytest.raises(ValueError):
            write_broker_files(tmp_path / "bad", 1883, [bad], persistence_dir=tmp_path / "p")
    cfg = write_broker_files(tmp_path / "ok", 18830, [BrokerUser("b1", "pw", "board", sat_ids=("sat1", "sat2"))],
                             persistence_dir=tmp_path / "p")
    for secret in (cfg.password_path, cfg.acl_path):
        assert secret.stat().st_mode & 0o777 == 0o600
    assert cfg.password_path.read_text().startswith("b1:$7$101$")   # mosquitto's PBKDF2-SHA512 format
    acl = cfg.acl_path.read_text()
    assert "user b1\ntopic read suncatcher/sat1/cmd\n" in acl and "topic write suncatcher/sat2/tlm" in acl
    assert "suncatcher/+/" not in acl
    conf = cfg.conf_path.read_text()
    for line in ("listener 18830 127.0.0.1", "allow_anonymous false", "set_tcp_nodelay true",
                 "autosave_on_changes true", "autosave_interval 1", f"persistence_location {tmp_path / 'p'}/"):
        assert f"\n{line}\n" in conf


def test_link_arguments_are_checked():
    for kw in ({"sat_id": "sat/1"}, {"sat_id": "+"}, {"role": "ground"}, {"qos": 3}):
        args = {"sat_id": SAT, "role": "twin", "username": "twin", "password": "x"} | kw
        with pytest.raises(ValueError):
            MqttLink("127.0.0.1", 1883, **args)
    with pytest.raises(ValueError, match="expected mqtt:"):
        MqttLink("http://127.0.0.1", sat_id=SAT, role="twin", username="twin", password="x")
    lk = MqttLink("mqtts://broker.example:9999", sat_id=SAT, role="board", username="b", password="x")
    assert (lk.host, lk.port, lk.tls is not None, lk.state) == ("broker.example", 9999, True, "closed")
    assert MqttLink("mqtts://broker.example", sat_id=SAT, role="board", username="b", password="x").port == 8883
