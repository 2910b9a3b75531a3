"""The dialect XML, its generation (Python and C) and its agreement with the HAL."""
import shutil
import struct
import subprocess
from pathlib import Path

import pymavlink
import pytest
from lxml import etree

from firmware_bridge.codec import MavlinkCodec
from firmware_bridge.dialect import XML_PATH, DialectError, ensure_python, generate_c, load_dialect
from twin.hal import CHANNELS, GROUPS, ISL_ACQUIRING, ISL_DOWN, ISL_UP, MODES

PYMAVLINK_XML = Path(pymavlink.__file__).parent / "dialects" / "v20"
SC_MESSAGES = ["SC_THERMAL_FRAME", "SC_POWER_FRAME", "SC_STATUS_FRAME", "SC_ACTUATOR_COMMAND",
               "SC_FSW_HOUSEKEEPING", "SC_STEP_REQUEST", "SC_STEP_REPLY", "SC_BOARD_STATUS",
               "SC_FAULT_INJECT"]
XML_TYPE = {"float32": "float", "uint8": "uint8_t", "uint16": "uint16_t"}


def messages_of(path: Path, follow_includes: bool) -> dict[int, str]:
    """id -> name of every message in ``path`` (and, optionally, everything it includes)."""
    out, todo, seen = {}, [path], set()
    while todo:
        p = todo.pop()
        if p.name in seen:
            continue
        seen.add(p.name)
        tree = etree.parse(str(p))
        out.update({int(m.get("id")): m.get("name") for m in tree.iter("message")})
        if follow_includes:
            todo += [PYMAVLINK_XML / inc.text.strip() for inc in tree.iter("include")]
    return out


def our_messages() -> dict[str, etree._Element]:
    return {m.get("name"): m for m in etree.parse(str(XML_PATH)).iter("message")}


def test_dialect_generates_and_imports():
    mod = load_dialect()
    assert mod.WIRE_PROTOCOL_VERSION == "2.0"
    for name in SC_MESSAGES:
        msgid = getattr(mod, f"MAVLINK_MSG_ID_{name}")
        assert mod.mavlink_map[msgid].msgname == name
    assert mod.MAVLINK_MSG_ID_HEARTBEAT == 0  # common.xml was found and included
    assert load_dialect() is mod


def test_ids_collide_with_neither_common_nor_ardupilotmega():
    ours = {int(m.get("id")): name for name, m in our_messages().items()}
    assert sorted(ours.values()) == sorted(SC_MESSAGES)
    assert all(58000 <= i < 58100 for i in ours), "ids outside the range the XML reserves"
    for dialect in ("common.xml", "ardupilotmega.xml"):
        theirs = messages_of(PYMAVLINK_XML / dialect, follow_includes=True)
        assert len(theirs) > 100
        assert not set(ours) & set(theirs), dialect
        assert not set(ours.values()) & set(theirs.values()), dialect
    for other in PYMAVLINK_XML.glob("*.xml"):  # and every other dialect pymavlink ships
        assert not set(ours) & set(messages_of(other, follow_includes=False)), other.name


def test_frame_messages_match_the_channel_table():
    msgs = our_messages()
    for group in GROUPS:
        fields = list(msgs[f"SC_{group.upper()}_FRAME"].iter("field"))
        assert [(f.get("name"), f.get("type")) for f in fields[:3]] == [
            ("t_ns", "uint64_t"), ("sample_t_ns", "uint64_t"), ("valid", "uint16_t")]
        channels = [c for c in CHANNELS if c.group == group]
        assert len(channels) <= 16  # fits the valid mask
        assert [(f.get("name"), f.get("type")) for f in fields[3:]] == [(c.name, XML_TYPE[c.wire]) for c in channels]
        for f, c in zip(fields[3:], channels):
            if c.unit in ("degC", "V", "A", "dBm"):
                assert f.get("units") == c.unit, c.name


def test_every_field_is_documented_and_physical_fields_have_units():
    for name, m in our_messages().items():
        assert m.find("description").text.strip(), name
        for f in m.iter("field"):
            text = (f.text or "").strip()
            assert len(text) > 10, (name, f.get("name"))
            assert f.get("units") or any(w in text for w in ("dimensionless", "count", "bitmask", "ASCII")), \
                (name, f.get("name"))


def test_enums_match_the_hal():
    mod = load_dialect()
    assert [mod.SC_ISL_STATE_DOWN, mod.SC_ISL_STATE_ACQUIRING, mod.SC_ISL_STATE_UP] == [ISL_DOWN, ISL_ACQUIRING, ISL_UP]
    assert [getattr(mod, f"SC_FSW_MODE_{m}") for m in MODES] == list(range(len(MODES)))


def test_xml_is_valid_with_strict_si_units():
    schema = etree.XMLSchema(etree.parse(str(Path(pymavlink.__file__).parent / "generator" / "mavschema.xsd")))
    schema.assertValid(etree.parse(str(XML_PATH)))


def test_regenerated_when_the_xml_changes(tmp_path):
    xml = tmp_path / "suncatcher.xml"
    shutil.copyfile(XML_PATH, xml)
    cache = tmp_path / "cache"
    first = ensure_python(xml, cache)
    stamp = first.stat().st_mtime_ns
    assert ensure_python(xml, cache) == first and first.stat().st_mtime_ns == stamp  # cached, not regenerated
    xml.write_text(xml.read_text().replace("Board boots, including watchdog resets (count).",
                                           "Board boots since manufacture (count)."))
    second = ensure_python(xml, cache)
    assert second != first and second.is_file() and not first.exists()
    assert "Board boots since manufacture" in second.read_text()


def test_bad_xml_is_a_dialect_error(tmp_path):
    xml = tmp_path / "bad.xml"
    xml.write_text(XML_PATH.read_text().replace('id="58005"', 'id="0"'))  # collides with HEARTBEAT
    with pytest.raises(DialectError):
        ensure_python(xml, tmp_path / "cache")
    xml.write_text(XML_PATH.read_text().replace("<include>common.xml</include>", "<include>nowhere.xml</include>"))
    with pytest.raises(DialectError, match="nowhere.xml"):
        ensure_python(xml, tmp_path / "cache")


C_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <suncatcher/mavlink.h>
int main(void) {
    mavlink_message_t msg, rx;
    mavlink_status_t status;
    uint8_t buf[MAVLINK_MAX_PACKET_LEN];
    const float v[9] = {1.5f, -40.25f, NAN, INFINITY, 0.0f, -0.0f, 0x1p-149f, 0x1.fffffep+127f, 123.0f};
    mavlink_msg_sc_thermal_frame_pack(7, 42, &msg, 18446744073709551615ULL, 5ULL, 0x1ABu,
                                      v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]);
    uint16_t len = mavlink_msg_to_send_buffer(buf, &msg);
    for (uint16_t i = 0; i < len; i++) printf("%02x", buf[i]);
    printf("\n");
    int got = 0;
    for (uint16_t i = 0; i < len; i++) got |= mavlink_parse_char(MAVLINK_COMM_1, buf[i], &rx, &status);
    if (!got || rx.msgid != MAVLINK_MSG_ID_SC_THERMAL_FRAME) return 2;
    mavlink_sc_thermal_frame_t d;
    mavlink_msg_sc_thermal_frame_decode(&rx, &d);
    if (d.t_ns != 18446744073709551615ULL || d.sample_t_ns != 5ULL || d.valid != 0x1ABu) return 3;
    const float *back = &d.t_tpu0_c;
    if (memcmp(back, v, sizeof v) != 0) return 4;
    return 0;
}
"""
C_VALUES = [1.5, -40.25, float("nan"), float("inf"), 0.0, -0.0, 2.0**-149, struct.unpack("<f", b"\xff\xff\x7f\x7f")[0], 123.0]


def test_c_headers_pack_and_unpack_a_thermal_frame(tmp_path):
    include = generate_c(tmp_path / "include")
    assert (include / "mavlink_msg_sc_thermal_frame.h").is_file()
    (tmp_path / "prog.c").write_text(C_PROGRAM)
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wno-address-of-packed-member",
                    "-I", str(tmp_path / "include"), str(tmp_path / "prog.c"), "-o", str(tmp_path / "prog"), "-lm"],
                   check=True, capture_output=True)
    run = subprocess.run([str(tmp_path / "prog")], capture_output=True, text=True)
    assert run.returncode == 0, run
    c_bytes = bytes.fromhex(run.stdout.strip())
    # The Python side frames the same message to the same bytes, and decodes the C frame.
    mod = load_dialect()
    codec = MavlinkCodec(src_system=7, src_component=42)
    py_bytes = codec.encode(mod.MAVLink_sc_thermal_frame_message(2**64 - 1, 5, 0x1AB, *C_VALUES))
    assert py_bytes == c_bytes
    [decoded] = codec.feed(c_bytes)
    got = [decoded.t_tpu0_c, decoded.t_tpu1_c, decoded.t_tpu2_c, decoded.t_tpu3_c, decoded.t_coldplate_c,
           decoded.t_radiator_c, decoded.t_battery_c, decoded.t_avionics_c, decoded.t_solar_array_c]
    assert struct.pack("<9f", *got) == struct.pack("<9f", *C_VALUES)
    assert (decoded.t_ns, decoded.sample_t_ns, decoded.valid) == (2**64 - 1, 5, 0x1AB)
