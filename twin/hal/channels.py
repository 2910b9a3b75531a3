"""The channel table: every sensor and actuator the flight software can see.

This table is the contract between the flight software and any board (the
simulated one, an emulated one over the wire, a physical one). Values travel as
Python floats in a :class:`~twin.hal.frame.SensorFrame`, indexed by the ``S_*``
constants below; every analog value is float32-exact (the resolution the wire
carries), every discrete value is a small integer stored as a float.

Sensors (board -> flight software)

=====================  =====  ===============  =========================================
name                   unit   range            meaning
=====================  =====  ===============  =========================================
t_tpu0_c..t_tpu3_c     degC   -80 .. 150       TPU group junction-side temperature
t_coldplate_c          degC   -80 .. 150       cold plate under the TPU groups
t_radiator_c           degC   -150 .. 150      main radiator panel
t_battery_c            degC   -60 .. 100       battery pack
t_avionics_c           degC   -60 .. 120       avionics / host computer box
t_solar_array_c        degC   -150 .. 150      solar array (back face)
v_bus_v                V      0 .. 120         main power bus
v_battery_v            V      0 .. 120         battery terminal voltage
i_battery_a            A      -500 .. 500      battery current, + charging / - discharging
i_solar_a              A      0 .. 500         solar array current delivered to the bus
i_<rail>_a             A      0 .. 500         load current of each power rail (RAILS)
sun_present            0/1    0 .. 1           coarse sun sensors see the Sun (> half disk)
isl<k>_state           enum   0 .. 2           optical link k: 0 down, 1 acquiring, 2 up
isl<k>_rx_dbm          dBm    -90 .. 20        optical link k received power per channel
ground_lock            0/1    0 .. 1           downlink receiver locked on a ground station
tpu<g>_online          count  0 .. 255         chips of TPU group g running (crashed chips reboot)
tpu_sdc_count          count  0 .. 65535       silent data corruptions detected (cumulative)
board_boot_count       count  0 .. 65535       board (re)boots, incl. watchdog resets
=====================  =====  ===============  =========================================

Actuators (flight software -> board): see :class:`~twin.hal.frame.ActuatorCommand`.

=====================  =====  ===============  =========================================
field                  unit   range            meaning
=====================  =====  ===============  =========================================
heater_duty[z]         1      0 .. 1           heater duty cycle per zone (HEATER_ZONES)
switch_tpu             bool                    TPU rail on/off
switch_optical         bool                    optical terminals rail on/off
tpu_cap[g]             1      0 .. 1           TPU group power cap, fraction of max power
isl_enable[k]          bool                    optical link k enabled (acquire / hold)
downlink_enable        bool                    ground transmitter on
charge_enable          bool                    battery charge regulator allowed to charge
watchdog_kick          count  0 .. 255         incremented each time the watchdog is serviced
fsw_mode               enum   0 .. 2           flight-software mode, for telemetry (MODES)
=====================  =====  ===============  =========================================
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Channel", "CHANNELS", "CHANNEL_INDEX", "N_CHANNELS", "N_TPU_GROUPS", "N_ISL", "RAILS",
    "HEATER_ZONES", "MODES", "GROUPS",
    "S_T_TPU", "S_T_COLDPLATE", "S_T_RADIATOR", "S_T_BATTERY", "S_T_AVIONICS", "S_T_SOLAR_ARRAY",
    "S_V_BUS", "S_V_BATTERY", "S_I_BATTERY", "S_I_SOLAR", "S_I_RAIL", "S_SUN_PRESENT",
    "S_ISL_STATE", "S_ISL_RX_DBM", "S_GROUND_LOCK", "S_TPU_ONLINE", "S_TPU_SDC_COUNT",
    "S_BOARD_BOOT_COUNT", "ISL_DOWN", "ISL_ACQUIRING", "ISL_UP",
]

N_TPU_GROUPS = 4
N_ISL = 4
#: Power rails with a current sensor each. "avionics" is always on; heaters are
#: driven by duty, "tpu" and "optical" by load switches, "downlink" by downlink_enable.
RAILS = ("avionics", "tpu", "optical", "downlink", "heater_battery", "heater_avionics")
HEATER_ZONES = ("battery", "avionics")
MODES = ("SAFE", "DEGRADED", "NOMINAL")
#: Channels are reported in three groups (one wire message each), each group
#: with its own sample time.
GROUPS = ("thermal", "power", "status")
ISL_DOWN, ISL_ACQUIRING, ISL_UP = 0, 1, 2


@dataclass(frozen=True)
class Channel:
    """One sensor channel: name, unit, physical range, wire type and group."""

    name: str
    unit: str
    lo: float
    hi: float
    wire: str  # "float32" or an unsigned integer type ("uint8", "uint16")
    group: str
    doc: str

    @property
    def discrete(self) -> bool:
        return self.wire != "float32"


def _build() -> tuple[Channel, ...]:
    ch: list[Channel] = []
    for g in range(N_TPU_GROUPS):
        ch.append(Channel(f"t_tpu{g}_c", "degC", -80, 150, "float32", "thermal", f"TPU group {g} temperature"))
    ch += [
        Channel("t_coldplate_c", "degC", -80, 150, "float32", "thermal", "cold plate temperature"),
        Channel("t_radiator_c", "degC", -150, 150, "float32", "thermal", "radiator temperature"),
        Channel("t_battery_c", "degC", -60, 100, "float32", "thermal", "battery temperature"),
        Channel("t_avionics_c", "degC", -60, 120, "float32", "thermal", "avionics temperature"),
        Channel("t_solar_array_c", "degC", -150, 150, "float32", "thermal", "solar array temperature"),
        Channel("v_bus_v", "V", 0, 120, "float32", "power", "bus voltage"),
        Channel("v_battery_v", "V", 0, 120, "float32", "power", "battery voltage"),
        Channel("i_battery_a", "A", -500, 500, "float32", "power", "battery current, + charging"),
        Channel("i_solar_a", "A", 0, 500, "float32", "power", "solar array current"),
    ]
    for rail in RAILS:
        ch.append(Channel(f"i_{rail}_a", "A", 0, 500, "float32", "power", f"{rail} rail current"))
    ch.append(Channel("sun_present", "0/1", 0, 1, "uint8", "power", "Sun seen by coarse sun sensors"))
    for k in range(N_ISL):
        ch.append(Channel(f"isl{k}_state", "enum", 0, 2, "uint8", "status", f"optical link {k} state"))
    for k in range(N_ISL):
        ch.append(Channel(f"isl{k}_rx_dbm", "dBm", -90, 20, "float32", "status", f"optical link {k} rx power"))
    ch.append(Channel("ground_lock", "0/1", 0, 1, "uint8", "status", "ground station lock"))
    for g in range(N_TPU_GROUPS):
        ch.append(Channel(f"tpu{g}_online", "count", 0, 255, "uint8", "status", f"TPU group {g} chips running"))
    ch.append(Channel("tpu_sdc_count", "count", 0, 65535, "uint16", "status", "silent data corruptions seen"))
    ch.append(Channel("board_boot_count", "count", 0, 65535, "uint16", "status", "board boots"))
    return tuple(ch)


CHANNELS: tuple[Channel, ...] = _build()
N_CHANNELS = len(CHANNELS)
CHANNEL_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CHANNELS)}

S_T_TPU = tuple(CHANNEL_INDEX[f"t_tpu{g}_c"] for g in range(N_TPU_GROUPS))
S_T_COLDPLATE = CHANNEL_INDEX["t_coldplate_c"]
S_T_RADIATOR = CHANNEL_INDEX["t_radiator_c"]
S_T_BATTERY = CHANNEL_INDEX["t_battery_c"]
S_T_AVIONICS = CHANNEL_INDEX["t_avionics_c"]
S_T_SOLAR_ARRAY = CHANNEL_INDEX["t_solar_array_c"]
S_V_BUS = CHANNEL_INDEX["v_bus_v"]
S_V_BATTERY = CHANNEL_INDEX["v_battery_v"]
S_I_BATTERY = CHANNEL_INDEX["i_battery_a"]
S_I_SOLAR = CHANNEL_INDEX["i_solar_a"]
S_I_RAIL = {rail: CHANNEL_INDEX[f"i_{rail}_a"] for rail in RAILS}
S_SUN_PRESENT = CHANNEL_INDEX["sun_present"]
S_ISL_STATE = tuple(CHANNEL_INDEX[f"isl{k}_state"] for k in range(N_ISL))
S_ISL_RX_DBM = tuple(CHANNEL_INDEX[f"isl{k}_rx_dbm"] for k in range(N_ISL))
S_GROUND_LOCK = CHANNEL_INDEX["ground_lock"]
S_TPU_ONLINE = tuple(CHANNEL_INDEX[f"tpu{g}_online"] for g in range(N_TPU_GROUPS))
S_TPU_SDC_COUNT = CHANNEL_INDEX["tpu_sdc_count"]
S_BOARD_BOOT_COUNT = CHANNEL_INDEX["board_boot_count"]
