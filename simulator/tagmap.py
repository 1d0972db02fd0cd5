"""The register/node map of the simulated plant: the single source of truth.

Every signal is defined once here — name, unit, normal range (docs/kpis.md §6 where the reference gives
one, engineering judgement [U] otherwise), transmitter measuring range, Modbus location and OPC UA
node — and everything else is derived from it: the plant model's output vector order, the Modbus
register image, the OPC UA address space, the generated agent config and the docs table.

Layout (0-based protocol addresses; holding and input registers are separate tables, coils and
discrete inputs are bit-addressed):

* ``plant`` (site-wide): registers 0-99, bits 0-15.
* line ``k`` (``kiln{k}``, ``raw_mill{k}``, ``coal_mill{k}``, ``cement_mill{k}``, ``whr{k}``):
  registers ``100*k`` to ``100*k+99``, bits ``16*k`` to ``16*k+15``.
* filler tags (``extra_tags``, for load tests): float32 holding registers from the next multiple of
  1,000 after the last line.

Signals added after the map was first published (``appended``: the alternative-fuel and clinker
feeders) are listed with their asset but addressed after every other signal of their block, so no
existing register moves and an older agent config still reads right.

OPC UA: namespace ``urn:kilnwatch:simulator`` (index 2), a folder per asset under Objects
(``Kiln1``, ``RawMill1``, ..., ``WHR1``, ``Plant``), string node ids ``Folder.Name``
(``ns=2;s=WHR1.GeneratorPower``), AnalogItemType variables with EngineeringUnits and EURange.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from connectors.modbus_config import REGISTER_WIDTH

NAMESPACE_URI = "urn:kilnwatch:simulator"
#: Index of :data:`NAMESPACE_URI` on the simulator's OPC UA server (0 = OPC UA, 1 = server URI).
NAMESPACE_INDEX = 2

REGISTER_STRIDE = 100  # registers per line block, per register table
BIT_STRIDE = 16  # bits per line block, per bit table
FILLER_ALIGN = 1000
FILLER_FOLDER_SIZE = 100  # OPC UA filler variables per sub-folder (asyncua add_node is O(children))


#: UN/CEFACT common codes for OPC UA EUInformation (OPC UA Part 8 §5.6.3); "" = no code.
UNECE_CODES: dict[str, str] = {
    "t/h": "E18",
    "kW": "KWT",
    "kWh": "KWH",
    "°C": "CEL",
    "%": "P1",
    "mbar": "MBR",
    "rpm": "RPM",
    "MPa": "MPA",
    "kPa": "KPA",
    "bar": "BAR",
    "t": "TNE",
}

ASSET_TYPES_PER_LINE: tuple[str, ...] = ("kiln", "raw_mill", "coal_mill", "cement_mill", "whr")
_FOLDER_PREFIX = {
    "kiln": "Kiln",
    "raw_mill": "RawMill",
    "coal_mill": "CoalMill",
    "cement_mill": "CementMill",
    "whr": "WHR",
}


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """A signal of one asset type, before it is placed on a line."""

    kind: str
    signal: str
    unit: str
    normal: tuple[float, float]
    table: str
    data_type: str
    ua_name: str
    description: str
    word_order: str = "big"
    scale: float = 1.0
    #: Transmitter measuring range: served values are clamped to it (a 4-20 mA loop saturates)
    #: and flagged Uncertain_EngineeringUnitsExceeded on OPC UA. None for counters and bits.
    instrument: tuple[float, float] | None = None
    #: Site-level (plant) signals whose magnitude grows with the number of lines.
    per_line_sum: bool = False
    #: A totaliser (uint32 kWh counter integrating power).
    counter: bool = False
    #: Added after the first published map: addressed after every original signal of its block.
    appended: bool = False


def _f(
    kind: str,
    signal: str,
    unit: str,
    normal: tuple[float, float],
    instrument: tuple[float, float],
    ua: str,
    desc: str,
    *,
    table: str = "holding",
    word_order: str = "big",
    per_line_sum: bool = False,
    appended: bool = False,
) -> SignalSpec:
    spec = SignalSpec(kind, signal, unit, normal, table, "float32", ua, desc, word_order, 1.0, instrument)
    return replace(spec, per_line_sum=per_line_sum, appended=appended)


def _i16(
    kind: str,
    signal: str,
    unit: str,
    normal: tuple[float, float],
    instrument: tuple[float, float],
    ua: str,
    desc: str,
    *,
    scale: float = 0.1,
    table: str = "input",
) -> SignalSpec:
    return SignalSpec(kind, signal, unit, normal, table, "int16", ua, desc, "big", scale, instrument)


def _counter(kind: str, signal: str, ua: str, desc: str, *, word_order: str = "big") -> SignalSpec:
    return SignalSpec(
        kind, signal, "kWh", (0.0, 4.0e9), "holding", "uint32", ua, desc, word_order, counter=True
    )


def _bit(kind: str, signal: str, ua: str, desc: str, *, table: str = "coil") -> SignalSpec:
    return SignalSpec(kind, signal, "", (0.0, 1.0), table, "bool", ua, desc)


# Ranges: docs/kpis.md §6 unless marked [U] (engineering judgement for a 5,000 t/d line); §2 for kWh/t.
KILN: tuple[SignalSpec, ...] = (
    _f("kiln", "feed_tph", "t/h", (250, 350), (0, 500), "FeedRate", "Kiln feed (raw meal), §6"),
    _f(
        "kiln",
        "main_burner_coal_tph",
        "t/h",
        (7, 11),
        (0, 20),
        "MainBurnerCoal",
        "Main burner coal, rotor weighfeeder, §6 (40 % of heat less the sawdust; marginal fuel)",
    ),
    _f(
        "kiln",
        "calciner_coal_tph",
        "t/h",
        (9, 14),
        (0, 30),
        "CalcinerCoal",
        "Calciner coal, §6 (60 % of heat less the RDF; marginal fuel)",
    ),
    _f(
        "kiln",
        "rdf_tph",
        "t/h",
        (5, 8),
        (0, 15),
        "RdfFeedRate",
        "RDF to the calciner, belt weigher, NCV 16 MJ/kg (§6: 14-20) [U]",
        appended=True,
    ),
    _f(
        "kiln",
        "biomass_tph",
        "t/h",
        (1.5, 3.5),
        (0, 8),
        "BiomassFeedRate",
        "Sawdust / wood chips to the main burner, NCV 12 MJ/kg [U]",
        appended=True,
    ),
    _f("kiln", "main_drive_kw", "kW", (300, 650), (0, 1000), "MainDrivePower", "Kiln main drive, §6"),
    _f("kiln", "kiln_inlet_o2_pct", "%", (1.5, 3.5), (0, 25), "KilnInletO2", "Kiln inlet O2, §6"),
    _f("kiln", "kiln_inlet_co_pct", "%", (0.0, 0.1), (0, 1), "KilnInletCO", "Kiln inlet CO, §6/§8"),
    _f("kiln", "ph_exit_o2_pct", "%", (2.5, 4.5), (0, 25), "PreheaterExitO2", "Preheater exit O2, §6"),
    _f("kiln", "ph_exit_co_pct", "%", (0.0, 0.3), (0, 1), "PreheaterExitCO", "Preheater exit CO, §6"),
    _f(
        "kiln",
        "ph_exit_gas_knm3_per_h",
        "kNm³/h",
        (260, 340),
        (0, 600),
        "PreheaterExitGasFlow",
        "Preheater exit gas flow [U] (~1.45 Nm³/kg clinker)",
    ),
    _f("kiln", "id_fan_kw", "kW", (1800, 3000), (0, 4000), "IdFanPower", "Preheater ID fan, §6"),
    _f(
        "kiln",
        "cooler_fans_kw",
        "kW",
        (1300, 2200),
        (0, 3000),
        "CoolerFansPower",
        "Grate cooler fans, total [U]",
    ),
    _f(
        "kiln",
        "calcination_degree_pct",
        "%",
        (85, 95),
        (0, 100),
        "CalcinationDegree",
        "Degree of calcination of hot meal, hourly lab, §6",
    ),
    _f("kiln", "free_lime_pct", "%", (0.8, 2.0), (0, 10), "FreeLime", "Clinker free lime, hourly lab, §6"),
    SignalSpec(
        "kiln",
        "speed_rpm",
        "rpm",
        (3.5, 4.5),
        "holding",
        "int16",
        "KilnSpeed",
        "Kiln speed, §6",
        scale=0.01,
        instrument=(0, 6),
    ),
    _counter("kiln", "energy_kwh_total", "EnergyTotal", "Kiln section energy (main drive + ID fan + cooler)"),
    _i16(
        "kiln",
        "burning_zone_temp_c",
        "°C",
        (1400, 1500),
        (700, 1800),
        "BurningZoneTemp",
        "Burning zone pyrometer (range 700-1800 °C), §6",
    ),
    _i16("kiln", "kiln_inlet_temp_c", "°C", (1000, 1150), (0, 1400), "KilnInletTemp", "Kiln inlet gas, §6"),
    _i16(
        "kiln",
        "calciner_outlet_temp_c",
        "°C",
        (860, 920),
        (0, 1200),
        "CalcinerOutletTemp",
        "Calciner outlet, §6",
    ),
    _i16("kiln", "tertiary_air_temp_c", "°C", (750, 950), (0, 1200), "TertiaryAirTemp", "Tertiary air, §6"),
    _i16(
        "kiln", "secondary_air_temp_c", "°C", (950, 1150), (0, 1400), "SecondaryAirTemp", "Secondary air, §6"
    ),
    _i16(
        "kiln",
        "ph_exit_temp_c",
        "°C",
        (300, 340),
        (0, 600),
        "PreheaterExitTemp",
        "Preheater exit gas, 5-stage, §6",
    ),
    _i16("kiln", "cooler_vent_temp_c", "°C", (220, 300), (0, 600), "CoolerVentTemp", "Cooler vent air, §6"),
    _i16("kiln", "clinker_temp_c", "°C", (80, 150), (0, 400), "ClinkerTemp", "Clinker at cooler exit, §6"),
    _i16(
        "kiln",
        "ph_exit_draft_mbar",
        "mbar",
        (-70, -50),
        (-150, 0),
        "PreheaterExitDraft",
        "Preheater exit draft, §6",
    ),
    _i16(
        "kiln",
        "hood_draft_mbar",
        "mbar",
        (-0.5, -0.1),
        (-5, 5),
        "HoodDraft",
        "Kiln hood draft, §6",
        scale=0.01,
    ),
    _bit("kiln", "running", "Running", "Kiln main drive running"),
)

RAW_MILL: tuple[SignalSpec, ...] = (
    _f(
        "raw_mill",
        "feed_tph",
        "t/h",
        (380, 450),
        (0, 600),
        "FeedRate",
        "Raw VRM feed, §6",
        table="input",
        word_order="little",
    ),
    _f(
        "raw_mill",
        "main_drive_kw",
        "kW",
        (3000, 4200),
        (0, 5000),
        "MainDrivePower",
        "Raw VRM main drive, §6",
        table="input",
        word_order="little",
    ),
    _f(
        "raw_mill",
        "fan_kw",
        "kW",
        (2000, 3000),
        (0, 3500),
        "FanPower",
        "Raw mill fan, §6",
        table="input",
        word_order="little",
    ),
    _f(
        "raw_mill",
        "separator_kw",
        "kW",
        (150, 300),
        (0, 400),
        "SeparatorPower",
        "Raw mill separator [U]",
        table="input",
        word_order="little",
    ),
    _f(
        "raw_mill",
        "r90_pct",
        "%",
        (10, 15),
        (0, 40),
        "ResidueR90",
        "Raw meal residue on 90 µm, hourly, §6",
        table="input",
        word_order="little",
    ),
    _i16("raw_mill", "outlet_temp_c", "°C", (85, 95), (0, 200), "OutletTemp", "Mill outlet gas [U]"),
    _counter(
        "raw_mill",
        "energy_kwh_total",
        "EnergyTotal",
        "Raw mill energy (drive + fan + separator)",
        word_order="little",
    ),
    _bit("raw_mill", "running", "Running", "Raw mill main drive running"),
)

COAL_MILL: tuple[SignalSpec, ...] = (
    _f(
        "coal_mill",
        "feed_tph",
        "t/h",
        (20, 40),
        (0, 50),
        "FeedRate",
        "Coal mill feed, §6",
        table="input",
        word_order="little",
    ),
    _f(
        "coal_mill",
        "main_drive_kw",
        "kW",
        (400, 800),
        (0, 1000),
        "MainDrivePower",
        "Coal mill drive, §6",
        table="input",
        word_order="little",
    ),
    _f(
        "coal_mill",
        "fan_kw",
        "kW",
        (80, 200),
        (0, 300),
        "FanPower",
        "Coal mill fan [U]",
        table="input",
        word_order="little",
    ),
    _f(
        "coal_mill",
        "r90_pct",
        "%",
        (8, 15),
        (0, 40),
        "ResidueR90",
        "Fine coal residue on 90 µm, hourly, §6",
        table="input",
        word_order="little",
    ),
    _i16("coal_mill", "outlet_temp_c", "°C", (60, 80), (0, 150), "OutletTemp", "Coal mill outlet [U]"),
    _counter(
        "coal_mill", "energy_kwh_total", "EnergyTotal", "Coal mill energy (drive + fan)", word_order="little"
    ),
    _bit("coal_mill", "running", "Running", "Coal mill running"),
)

CEMENT_MILL: tuple[SignalSpec, ...] = (
    _f(
        "cement_mill",
        "feed_tph",
        "t/h",
        (120, 180),
        (0, 250),
        "FeedRate",
        "Ball mill fresh feed (all feeders), §6",
        word_order="little",
    ),
    _f(
        "cement_mill",
        "clinker_feeder_tph",
        "t/h",
        (95, 135),
        (0, 200),
        "ClinkerFeedRate",
        "Clinker feeder, ~75 % of the feed (gypsum, limestone, slag the rest) [U]",
        word_order="little",
        appended=True,
    ),
    _f(
        "cement_mill",
        "main_drive_kw",
        "kW",
        (3000, 4500),
        (0, 5500),
        "MainDrivePower",
        "Ball mill main drive, §6",
        word_order="little",
    ),
    _f(
        "cement_mill",
        "separator_kw",
        "kW",
        (100, 250),
        (0, 400),
        "SeparatorPower",
        "Separator, §6",
        word_order="little",
    ),
    _f(
        "cement_mill",
        "fan_kw",
        "kW",
        (400, 650),
        (0, 900),
        "FanPower",
        "Separator/mill fan [U]",
        word_order="little",
    ),
    SignalSpec(
        "cement_mill",
        "fineness_blaine_cm2_per_g",
        "cm²/g",
        (3000, 4000),
        "holding",
        "uint16",
        "Fineness",
        "Blaine, online analyser every 10 min, §6",
        instrument=(0, 6000),
    ),
    _i16("cement_mill", "outlet_temp_c", "°C", (100, 125), (0, 200), "OutletTemp", "Mill outlet [U]"),
    _counter(
        "cement_mill", "energy_kwh_total", "EnergyTotal", "Cement mill energy (drive + separator + fan)"
    ),
    _bit("cement_mill", "running", "Running", "Cement mill main drive running"),
)

WHR: tuple[SignalSpec, ...] = (
    _f(
        "whr",
        "generator_kw",
        "kW",
        (6000, 9500),
        (0, 12000),
        "GeneratorPower",
        "Generator active power, §5 (30-45 kWh/t clinker)",
    ),
    _f("whr", "aux_kw", "kW", (500, 1100), (0, 2000), "AuxiliaryPower", "WHR auxiliaries, §5"),
    _f("whr", "main_steam_pressure_mpa", "MPa", (1.3, 1.8), (0, 2.5), "MainSteamPressure", "Main steam, §5"),
    _f("whr", "main_steam_tph", "t/h", (28, 42), (0, 60), "MainSteamFlow", "Main steam flow, §5"),
    _f(
        "whr",
        "condenser_pressure_kpa",
        "kPa",
        (6, 10),
        (0, 101.3),
        "CondenserPressure",
        "Condenser absolute pressure, §5",
    ),
    _i16("whr", "aqc_inlet_temp_c", "°C", (350, 420), (0, 600), "AqcInletTemp", "AQC boiler gas inlet, §5"),
    _i16("whr", "aqc_outlet_temp_c", "°C", (85, 130), (0, 400), "AqcOutletTemp", "AQC boiler gas outlet, §5"),
    _i16("whr", "sp_inlet_temp_c", "°C", (300, 340), (0, 600), "SpInletTemp", "SP boiler gas inlet, §5"),
    _i16(
        "whr",
        "sp_outlet_temp_c",
        "°C",
        (190, 230),
        (0, 400),
        "SpOutletTemp",
        "SP boiler gas outlet (to raw mill drying), §5",
    ),
    _i16("whr", "main_steam_temp_c", "°C", (330, 380), (0, 500), "MainSteamTemp", "Main steam, §5"),
    _counter("whr", "generator_kwh_total", "GeneratorEnergyTotal", "Generator energy"),
    _bit("whr", "running", "Running", "Generator breaker closed", table="discrete"),
)

PLANT: tuple[SignalSpec, ...] = (
    _f(
        "plant",
        "incomer_kw",
        "kW",
        (5000, 17000),  # ~12 MW with all mills running, ~6 MW while the raw mill waits on a full silo
        (-30000, 60000),
        "IncomerPower",
        "Grid import at the main incomer (consumption minus WHR generation)",
        per_line_sum=True,
    ),
    _f(
        "plant",
        "compressor_kw",
        "kW",
        (500, 1000),
        (0, 3000),
        "CompressorPower",
        "Compressor house total [U]",
        per_line_sum=True,
    ),
    _f(
        "plant",
        "compressor_header_bar",
        "bar",
        (6.0, 7.5),
        (0, 10),
        "CompressorHeaderPressure",
        "Compressed-air header pressure [U]",
    ),
    _f(
        "plant",
        "compressed_air_nm3_per_min",
        "Nm³/min",
        (80, 180),
        (0, 400),
        "CompressedAirFlow",
        "Compressed-air flow [U]",
        per_line_sum=True,
    ),
    _f(
        "plant",
        "crusher_kw",
        "kW",
        (0, 800),
        (0, 1500),
        "CrusherPower",
        "Limestone crusher, day shifts [U]",
        per_line_sum=True,
    ),
    _f(
        "plant",
        "packing_kw",
        "kW",
        (0, 500),
        (0, 1000),
        "PackingPower",
        "Packing plant, day shifts [U]",
        per_line_sum=True,
    ),
    _counter("plant", "incomer_kwh_total", "IncomerEnergyTotal", "Grid import energy (import only)"),
    _counter("plant", "compressor_kwh_total", "CompressorEnergyTotal", "Compressor house energy"),
    _i16("plant", "ambient_temp_c", "°C", (-10, 40), (-40, 60), "AmbientTemp", "Ambient air [U]"),
    _bit("plant", "production_running", "ProductionRunning", "Any production section running"),
)

SPECS_BY_TYPE: dict[str, tuple[SignalSpec, ...]] = {
    "kiln": KILN,
    "raw_mill": RAW_MILL,
    "coal_mill": COAL_MILL,
    "cement_mill": CEMENT_MILL,
    "whr": WHR,
    "plant": PLANT,
}


@dataclass(frozen=True, slots=True)
class Tag:
    """One served signal with its place on both servers; ``index`` is its slot in value vectors."""

    index: int
    name: str
    asset: str
    asset_type: str
    line: int
    signal: str
    unit: str
    normal: tuple[float, float]
    instrument: tuple[float, float] | None
    table: str
    address: int
    data_type: str
    word_order: str
    scale: float
    counter: bool
    folder: str
    ua_name: str
    description: str

    @property
    def node_string_id(self) -> str:
        return f"{self.folder}.{self.ua_name}"

    @property
    def node_id(self) -> str:
        """``ns=2;s=Folder.Name`` (the simulator's namespace index is fixed at 2)."""
        return f"ns={NAMESPACE_INDEX};s={self.node_string_id}"

    @property
    def node_id_nsu(self) -> str:
        """The same node addressed by namespace URI, immune to index renumbering."""
        return f"nsu={NAMESPACE_URI};s={self.node_string_id}"

    @property
    def width(self) -> int:
        return REGISTER_WIDTH[self.data_type]

    @property
    def is_bool(self) -> bool:
        return self.data_type == "bool"


@dataclass(frozen=True)
class TagMap:
    """All tags of a plant with ``lines`` kiln lines and ``extra_tags`` filler tags."""

    lines: int
    extra_tags: int
    tags: tuple[Tag, ...]

    @functools.cached_property
    def by_name(self) -> dict[str, Tag]:
        return {t.name: t for t in self.tags}

    @functools.cached_property
    def index(self) -> dict[str, int]:
        return {t.name: t.index for t in self.tags}

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tags]

    def __len__(self) -> int:
        return len(self.tags)

    def __getitem__(self, name: str) -> Tag:
        return self.by_name[name]

    def assets(self) -> list[tuple[str, str, int]]:
        """(asset id, asset type, line) in map order, filler excluded."""
        seen: dict[str, tuple[str, str, int]] = {}
        for t in self.tags:
            if t.asset_type != "filler" and t.asset not in seen:
                seen[t.asset] = (t.asset, t.asset_type, t.line)
        return list(seen.values())

    def asset_tags(self, asset: str) -> list[Tag]:
        return [t for t in self.tags if t.asset == asset]

    def table_size(self, table: str) -> int:
        """Registers (or bits) needed for ``table``: one past the highest used address."""
        ends = [t.address + t.width for t in self.tags if t.table == table]
        return max(ends, default=0)


def asset_name(asset_type: str, line: int) -> str:
    return "plant" if asset_type == "plant" else f"{asset_type}{line}"


def folder_name(asset_type: str, line: int) -> str:
    return "Plant" if asset_type == "plant" else f"{_FOLDER_PREFIX[asset_type]}{line}"


def filler_base(lines: int) -> int:
    """First holding register of the filler tags."""
    end = (lines + 1) * REGISTER_STRIDE
    return -(-end // FILLER_ALIGN) * FILLER_ALIGN


def extra_tags_for(total_tags: int, *, lines: int = 1) -> int:
    """Filler tags needed so that the plant serves exactly ``total_tags`` tags."""
    n = total_tags - len(build_tagmap(lines=lines))
    if n < 0:
        raise ValueError(f"{lines} line(s) already serve more than {total_tags} tags")
    return n


def _block_addresses(specs: list[SignalSpec], line: int) -> list[int]:
    """Addresses of one block's signals: in list order, the ``appended`` ones after all the others."""
    cursor: dict[str, int] = {}
    out = [0] * len(specs)
    for i in sorted(range(len(specs)), key=lambda i: specs[i].appended):  # stable: list order within
        spec = specs[i]
        bit = spec.table in ("coil", "discrete")
        stride = BIT_STRIDE if bit else REGISTER_STRIDE
        out[i] = cursor.get(spec.table, line * stride)
        cursor[spec.table] = out[i] + (1 if bit else REGISTER_WIDTH[spec.data_type])
        if cursor[spec.table] > line * stride + stride:
            raise AssertionError(f"line block overflow in {spec.table} for {spec.kind}")  # map design error
    return out


@functools.lru_cache(maxsize=16)
def build_tagmap(*, lines: int = 1, extra_tags: int = 0) -> TagMap:
    """Place every signal of ``lines`` lines plus ``extra_tags`` fillers on the address map."""
    if lines < 1:
        raise ValueError("lines must be >= 1")
    if extra_tags < 0:
        raise ValueError("extra_tags must be >= 0")
    base = filler_base(lines)
    if base + 2 * extra_tags > 65536:
        raise ValueError(
            f"{lines} line(s) and {extra_tags} filler tags do not fit the 65,536-register Modbus space"
        )
    tags: list[Tag] = []
    for line in range(lines + 1):
        specs = [s for kind in (ASSET_TYPES_PER_LINE if line else ("plant",)) for s in SPECS_BY_TYPE[kind]]
        for spec, addr in zip(specs, _block_addresses(specs, line), strict=True):
            kind = spec.kind
            normal, instrument = spec.normal, spec.instrument
            if spec.per_line_sum and lines > 1:
                normal = (normal[0] * lines, normal[1] * lines)
                instrument = (instrument[0] * lines, instrument[1] * lines) if instrument else None
            tags.append(
                Tag(
                    index=len(tags),
                    name=f"{asset_name(kind, line)}.{spec.signal}",
                    asset=asset_name(kind, line),
                    asset_type=kind,
                    line=line,
                    signal=spec.signal,
                    unit=spec.unit,
                    normal=normal,
                    instrument=instrument,
                    table=spec.table,
                    address=addr,
                    data_type=spec.data_type,
                    word_order=spec.word_order,
                    scale=spec.scale,
                    counter=spec.counter,
                    folder=folder_name(kind, line),
                    ua_name=spec.ua_name,
                    description=spec.description,
                )
            )
    for i in range(extra_tags):
        tags.append(
            Tag(
                index=len(tags),
                name=f"fill.v{i:05d}",
                asset="fill",
                asset_type="filler",
                line=0,
                signal=f"v{i:05d}",
                unit="",
                normal=(0.0, 100.0),
                instrument=None,
                table="holding",
                address=base + 2 * i,
                data_type="float32",
                word_order="big",
                scale=1.0,
                counter=False,
                folder=f"Filler.G{i // FILLER_FOLDER_SIZE:03d}",
                ua_name=f"V{i:05d}",
                description="Filler tag for load tests",
            )
        )
    return TagMap(lines=lines, extra_tags=extra_tags, tags=tuple(tags))


def _fmt_range(r: tuple[float, float] | None) -> str:
    return "" if r is None else f"{r[0]:g} – {r[1]:g}"


def markdown_table(tagmap: TagMap, *, include_filler: bool = False) -> str:
    """The map as a Markdown table (docs/simulator.md, ``kilnwatch simulate --print-map``)."""
    head = (
        "| tag | unit | normal | transmitter range | Modbus table | address | type | word order | scale "
        "| OPC UA node id | description |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for t in tagmap.tags:
        if t.asset_type == "filler" and not include_filler:
            continue
        normal = "" if t.counter or t.is_bool else _fmt_range(t.normal)
        order = t.word_order if t.width > 1 else ""
        rows.append(
            f"| `{t.name}` | {t.unit} | {normal} | {_fmt_range(t.instrument)} | {t.table} | {t.address} "
            f"| {t.data_type} | {order} | {t.scale:g} | `{t.node_id}` | {t.description} |"
        )
    return head + "\n".join(rows) + "\n"
