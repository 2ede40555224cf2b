"""Hardware description: the memristive devices and the chip around them.

A hardware YAML (``--hw``, presets in ``hwconfigs/``) holds these fields at its top level;
in the resolved run configuration they sit under ``hardware``, so ``--set
hardware.adc.bits=4`` overrides one of them.

Every number carries its unit in its name or description and the source of its default.
Energies of CMOS circuits are given at the technology node (``reference_node_nm``) and supply
(``reference_vdd_v``) of their source and scaled to ``technology.node_nm`` /
``technology.vdd_v`` with the rule of ``technology.energy_scaling`` (docs/architecture.md §6).
The model built from this description is documented in ``docs/architecture.md``.

Main sources (full references in docs/architecture.md):
- ISAAC: Shafiee et al., ISCA 2016; per-action numbers as tabulated in Accelergy's
  hwcomponents-library (``hwcomponents_library/library/isaac.py``).
- NeuRRAM: Wan et al., Nature 608, 504 (2022), 130 nm; hwcomponents-library ``wan.py``.
- NeuroSim: SAR ADC latency (log2(levels)+1) cycles of 1 ns per conversion
  (``SarADC::CalculateLatency``).
- Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm, 0.9 V): int32 add 0.1 pJ,
  int32 mult 3.1 pJ, fp32 add 0.9 pJ, fp32 mult 3.7 pJ, 8 kB SRAM 64-bit read 10 pJ.
- Stillmaker & Baas, Integration 58 (2017): CMOS energy scaling 180 nm .. 7 nm.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from archsim.config.base import StrictModel
from archsim.config.device import DeviceConfig

ENDPOINTS = ("dpu", "gbuf")


def area_node_field(default: float | None = None) -> Any:
    """The ``area_reference_node_nm`` field of every section that has areas."""
    return Field(
        default=default, ge=5, le=250,
        description="Node (nm) of the area figures of this section; None = reference_node_nm. "
        "Areas scale as (technology.node_nm / area_reference_node_nm)^2 (archsim/hw/area.py).",
    )


class TechnologyConfig(StrictModel):
    """CMOS technology of the periphery and the digital unit."""

    node_nm: float = Field(
        default=130.0, ge=5, le=250, description="CMOS technology node in nm (the paper's chip: 130 nm)."
    )
    vdd_v: float = Field(default=1.2, gt=0, le=5, description="Digital supply voltage in volts.")
    energy_scaling: Literal["stillmaker", "dennard", "none"] = Field(
        default="stillmaker",
        description="How energies given at another node are scaled to node_nm: 'stillmaker' "
        "(Stillmaker & Baas 2017 fitted energy-per-switch polynomials, the rule Accelergy "
        "uses), 'dennard' (E ~ C V^2 with C ~ node: E * (node/ref) * (vdd/ref_vdd)^2) or "
        "'none'. Leakage powers are scaled by the same factor.",
    )


class ClockConfig(StrictModel):
    """Clock domains. Latencies are counted in cycles of each component's clock."""

    crossbar_hz: float = Field(
        default=1.0e9,
        gt=0,
        description="Tile clock in Hz (DAC, array read, ADC, shift-and-add, programming). "
        "NeuroSim's 1 ns SAR step assumes 1 GHz. Reported 'latency_cycles' use this clock.",
    )
    dpu_hz: float | None = Field(
        default=None, gt=0, description="Digital processing unit clock in Hz; None = crossbar_hz."
    )
    interconnect_hz: float | None = Field(
        default=None, gt=0, description="Interconnect clock in Hz; None = crossbar_hz."
    )


class TileConfig(StrictModel):
    """Crossbar tiles: R x C 1T1R arrays with their periphery."""

    rows: int = Field(default=128, ge=1, le=65536, description="Word lines per tile (inputs).")
    cols: int = Field(default=128, ge=1, le=65536, description="Bit lines per tile (device columns).")
    count: int | None = Field(
        default=None,
        ge=1,
        description="Tiles on the chip; None = exactly as many as the network's mapping needs. "
        "A network needing more raises a MappingError.",
    )
    weight_encoding: Literal["differential", "reference"] | None = Field(
        default=None,
        description="'differential': 2 columns (G+, G-) per weight, the pair's currents "
        "subtracted before the ADC; 'reference': 1 column per weight plus 1 reference column "
        "per tile. None follows device.mapping.",
    )
    leakage_w: float = Field(
        default=0.0,
        ge=0,
        description="Static power of one tile's periphery (drivers, ADCs, buffers) in W at "
        "reference_node_nm. 1T1R arrays themselves do not leak when unselected.",
    )
    power_gate_unused: bool = Field(
        default=True, description="Tiles the mapping does not use are power-gated (no leakage)."
    )
    shift_add_energy_j: float = Field(
        default=0.021e-12,
        ge=0,
        description="Energy in J of one shift-and-add of an ADC result (ISAAC 16-bit shift-add, "
        "0.021 pJ at 32 nm; hwcomponents-library isaac.py).",
    )
    reference_node_nm: float = Field(
        default=32.0, ge=5, le=250, description="Node of shift_add_energy_j and leakage_w (nm)."
    )
    reference_vdd_v: float = Field(default=1.0, gt=0, description="Supply of the reference numbers (V).")
    cell_area_f2: float = Field(
        default=125.74,
        gt=0,
        description="Area of one 1T1R cell in F^2, F = technology.node_nm (the access transistor "
        "sets the pitch). Default: NeuRRAM (Wan et al., Nature 2022, Fig. 11f: RRAM cells 12 % "
        "of a 256x256 core), 125.74 F^2 at 130 nm as tabulated in CiMLoop's "
        "rram_wan_nature_2022.cell.yaml.",
    )
    shift_add_area_um2: float = Field(
        default=60.0,
        ge=0,
        description="Area of one shift-and-add unit (one per ADC) in um^2 at area_reference_node_nm "
        "(ISAAC 16-bit S+A: 60 um^2 at 32 nm; hwcomponents-library isaac.py).",
    )
    periphery_area_um2: float = Field(
        default=358.75,
        ge=0,
        description="Other per-tile periphery (input/output registers, control) in um^2 at "
        "area_reference_node_nm. Default: ISAAC IMA input register 2 KB (2100 um^2) + output "
        "register 256 B (770 um^2) shared by 8 crossbars = 358.75 um^2 per crossbar at 32 nm "
        "(Shafiee et al., ISCA 2016, Table 1).",
    )
    area_reference_node_nm: float | None = area_node_field()


class DacConfig(StrictModel):
    """Word-line drivers / DACs that apply the inputs."""

    input_bits: int = Field(
        default=8,
        ge=1,
        le=16,
        description="Resolution of a multi-valued input (layer 0 pixels, transposed-read "
        "errors). Binary (sign) activations always take one slice.",
    )
    mode: Literal["bit_serial", "multi_bit"] = Field(
        default="bit_serial",
        description="'bit_serial': 1-bit DACs, an input_bits input is applied as input_bits "
        "slices (ISAAC); 'multi_bit': one slice with an input_bits DAC.",
    )
    energy_per_conversion_j: float = Field(
        default=0.41667e-12,
        ge=0,
        description="Energy in J of one conversion of a reference_bits DAC (ISAAC 1-bit DAC: "
        "4 mW / (128*8 DACs * 1.2e7 /s) * 128/100 = 0.417 pJ at 32 nm; hwcomponents-library "
        "isaac.py). Scaled by 2^(bits - reference_bits) for other resolutions (Accelergy).",
    )
    reference_bits: int = Field(default=1, ge=1, le=16, description="Resolution of energy_per_conversion_j.")
    latency_s: float = Field(
        default=1.0e-9, ge=0, description="Settling time in s of one slice (ISAAC: 1 ns)."
    )
    area_um2: float = Field(
        default=0.166015625,
        ge=0,
        description="Area of one row driver/DAC of reference_bits in um^2 at area_reference_node_nm "
        "(ISAAC: 8 x 128 1-bit DACs in 170 um^2 at 32 nm, Table 1; hwcomponents-library "
        "isaac.py). Scaled by 2^(bits - reference_bits) (Accelergy's DAC rule).",
    )
    area_reference_node_nm: float | None = area_node_field()
    reference_node_nm: float = Field(default=32.0, ge=5, le=250, description="Node of the energy (nm).")
    reference_vdd_v: float = Field(default=1.0, gt=0, description="Supply of the energy (V).")


class AdcConfig(StrictModel):
    """Column ADCs, shared by several columns through a fixed multiplexer."""

    model: str = Field(
        default="sar",
        min_length=1,
        description="ADC model by name (registry archsim.hw.converters.ADC_MODELS): 'sar' = "
        "successive approximation, energy vs. bits from the ISAAC/Saberi table, NeuroSim latency.",
    )
    bits: int = Field(default=8, ge=1, le=16, description="ADC resolution in bits.")
    columns_per_adc: int = Field(
        default=8,
        ge=1,
        description="Device columns hard-wired to one ADC through its multiplexer (ISAAC: 128 "
        "columns / 8 ADCs = 16; NeuRRAM: 2 columns (a differential pair) per neuron ADC). "
        "Columns sharing an ADC are converted one after another, so a partly used tile takes "
        "as many rounds as its busiest ADC has used columns.",
    )
    energy_per_conversion_j: float = Field(
        default=1.67e-12,
        ge=0,
        description="Energy in J of one conversion at reference_bits (ISAAC 8-bit SAR: 16 mW / "
        "(8 ADCs * 1.2 GS/s) = 1.67 pJ at 32 nm; NeuRRAM: 0.3 pJ at 130 nm). Other "
        "resolutions follow the ISAAC/Saberi table 4..10 bits (0.79, 0.99, 1.20, 1.42, 1.67, "
        "1.97, 2.38 pJ), linear below 4 bits, x2 per bit above 10.",
    )
    reference_bits: int = Field(default=8, ge=1, le=16, description="Resolution of energy_per_conversion_j.")
    latency_s: float | None = Field(
        default=None,
        ge=0,
        description="Time in s of one conversion; None = NeuroSim SAR: (bits + 1) * 1 ns.",
    )
    full_scale_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Clipping range of each column's partial sum as a fraction of the largest "
        "possible one (rows * max|input| * max|weight|). None = auto: min(1, "
        "auto_sigmas/sqrt(rows)), i.e. auto_sigmas standard deviations of a sum of rows "
        "independent unit-variance products.",
    )
    auto_sigmas: float = Field(
        default=4.0, gt=0, description="Standard deviations covered by the auto clipping range."
    )
    conversion: Literal["per_slice", "per_vector"] = Field(
        default="per_slice",
        description="'per_slice': every input slice is sampled, converted and shift-added "
        "digitally (ISAAC); 'per_vector': the slices are integrated in the analog domain and "
        "each output is converted once per input vector (NeuRRAM's integrating neuron).",
    )
    sample_energy_j: float = Field(
        default=0.98e-15,
        ge=0,
        description="Energy in J of sampling (and integrating) one column output for one input "
        "slice, at reference_node_nm / reference_vdd_v. ISAAC sample-and-hold: 10 uW for "
        "8 x 128 S+H sampled every 100 ns = 0.98 fJ at 32 nm (Table 1).",
    )
    area_um2: float = Field(
        default=1200.0,
        ge=0,
        description="Area of one ADC of reference_bits in um^2 at area_reference_node_nm (ISAAC "
        "8-bit SAR: 9600 um^2 / 8 ADCs at 32 nm, Table 1). Scaled by 2^(bits - reference_bits) "
        "(Accelergy's ADC rule; Murmann's ADC survey shows SAR area roughly doubling per bit).",
    )
    sample_area_um2: float = Field(
        default=0.0390625,
        ge=0,
        description="Area of one column sample-and-hold/integrator in um^2 at area_reference_node_nm "
        "(ISAAC: 8 x 128 S+H in 40 um^2 at 32 nm, Table 1).",
    )
    area_reference_node_nm: float | None = area_node_field()
    reference_node_nm: float = Field(default=32.0, ge=5, le=250, description="Node of the energy (nm).")
    reference_vdd_v: float = Field(default=1.0, gt=0, description="Supply of the energy (V).")


class CrossbarConfig(StrictModel):
    """Analog read of the 1T1R array."""

    read_voltage_v: float = Field(default=0.2, gt=0, description="Read voltage in V (0.2 V: assumption, below the HfO2 switching voltage).")
    read_time_s: float = Field(default=1.0e-9, gt=0, description="Read pulse per slice in s (1 ns).")
    mean_cell_conductance_s: float | None = Field(
        default=None,
        gt=0,
        description="Average cell conductance in S for the read energy V^2 G t per cell; None = "
        "(device.g_min_s + device.g_max_s) / 2.",
    )
    backward: Literal["digital", "transposed"] = Field(
        default="digital",
        description="Backward pass delta W^T: 'digital' (exact, MACs in the DPU) or "
        "'transposed' (crossbar read of W^T through row-side ADCs with the same resolution "
        "and sharing as the column ADCs).",
    )
    circuit_effects: bool = Field(
        default=True,
        description="Apply DAC quantisation and per-tile ADC clipping/quantisation in the matrix "
        "products. False computes them exactly (timing and energy are still modelled).",
    )


class ProgrammingConfig(StrictModel):
    """Write-verify of devices whose level changed."""

    pulse_energy_j: float = Field(
        default=0.6e-12,
        ge=0,
        description="Energy in J of one SET/RESET pulse (0.6 pJ: assumption, V^2 G t of 2 V, 10 ns, 15 uS). "
        "Used when the device model reports no energy (CommitReport.energy_j = 0).",
    )
    pulse_time_s: float | None = Field(
        default=None, gt=0, description="Pulse width in s; None = device.pulse_width_s."
    )
    verify_time_s: float | None = Field(
        default=None,
        ge=0,
        description="Verify-read time in s after each pulse (plus one ADC conversion); None = "
        "device.verify_time_s.",
    )
    row_parallel: bool = Field(
        default=True,
        description="All changed devices of one row of a tile are pulsed together (write latency "
        "= sum over rows of the row's largest pulse count); False programs one device at a time.",
    )
    address_bits: int | None = Field(
        default=None,
        ge=1,
        description="Bits to address a device in a tile; None = ceil(log2(rows*cols)).",
    )


class DpuConfig(StrictModel):
    """Digital processing unit: hidden weights, gradients, metaplastic update."""

    hidden_precision: Literal["float32"] | int = Field(
        default="float32",
        description="Hidden weights (and Adam moments): 'float32' or a fixed-point width in bits.",
    )
    mac_units: int = Field(
        default=64, ge=1, description="Arithmetic lanes; each performs one add or multiply per DPU cycle."
    )
    float_add_energy_j: float = Field(default=0.9e-12, ge=0, description="fp32 add, J (Horowitz 2014, 45 nm).")
    float_mult_energy_j: float = Field(default=3.7e-12, ge=0, description="fp32 multiply, J (Horowitz 2014, 45 nm).")
    int32_add_energy_j: float = Field(
        default=0.1e-12,
        ge=0,
        description="32-bit integer add, J (Horowitz 2014, 45 nm); a b-bit fixed add costs b/32 of it.",
    )
    int32_mult_energy_j: float = Field(
        default=3.1e-12,
        ge=0,
        description="32x32-bit integer multiply, J (Horowitz 2014, 45 nm); a b-bit multiply "
        "costs (b/32)^2 of it (array multiplier).",
    )
    sram_read_energy_per_bit_j: float = Field(
        default=0.156e-12,
        ge=0,
        description="SRAM read energy per bit, J (Horowitz 2014: 8 kB SRAM, 64-bit read 10 pJ, 45 nm).",
    )
    sram_write_energy_per_bit_j: float = Field(
        default=0.156e-12, ge=0, description="SRAM write energy per bit, J (taken equal to the read)."
    )
    sram_bits: int | None = Field(
        default=None,
        ge=1,
        description="SRAM capacity in bits; None = sized to hold hidden weights, Adam moments, "
        "batch-norm parameters and one batch of activations. Too small raises a MappingError.",
    )
    sram_leakage_w_per_mbit: float = Field(
        default=0.0, ge=0, description="SRAM static power in W per Mbit at reference_node_nm."
    )
    leakage_w: float = Field(default=0.0, ge=0, description="Static power of the DPU logic in W.")
    update_mults_per_weight: int = Field(
        default=9,
        ge=0,
        description="Multiplies per weight of the Adam + weight-decay step (m: 2, v: 3, bias "
        "corrections 2, decay 1, step 1; sqrt and divide counted as one each is folded in).",
    )
    update_adds_per_weight: int = Field(
        default=5, ge=0, description="Adds per weight of the Adam step (m, v, eps, decay, W_H update)."
    )
    meta_ops_per_weight: int = Field(
        default=5,
        ge=0,
        description="Operations per weight of the meta-function: |W_H|/interval (1 mult), "
        "tanh^2 by table look-up (1 add-equivalent), 1-f (1 add), sign test (1 add), scale (1 mult).",
    )
    bn_forward_ops_per_element: int = Field(
        default=6, ge=0, description="Ops per output element for batch-norm statistics, normalisation and sign."
    )
    bn_backward_ops_per_element: int = Field(
        default=10, ge=0, description="Ops per element of the batch-norm backward and straight-through gate."
    )
    mac_area_um2: float = Field(
        default=6628.0,
        ge=0,
        description="Area of one arithmetic lane (a 32-bit adder and a 32-bit multiplier) in um^2 "
        "at area_reference_node_nm: Aladdin 40 nm library, adder 278 um^2 + multiplier 6350 um^2 "
        "(Shao et al., ISCA 2014; hwcomponents-library aladdin.py). A fixed-point lane of b bits "
        "scales as the energies (adder b/32, multiplier (b/32)^2).",
    )
    sram_cell_area_f2: float = Field(
        default=170.9,
        gt=0,
        description="6T SRAM bit-cell area in F^2 at technology.node_nm (Intel 45 nm: 0.346 um^2 = "
        "170.9 F^2; Mistry et al., IEDM 2007). Decoders and sense amplifiers are not included.",
    )
    area_reference_node_nm: float | None = area_node_field(40.0)  # Aladdin library: 40 nm
    reference_node_nm: float = Field(default=45.0, ge=5, le=250, description="Node of the energies (nm).")
    reference_vdd_v: float = Field(default=0.9, gt=0, description="Supply of the energies (V).")

    @field_validator("hidden_precision")
    @classmethod
    def _precision(cls, value: str | int) -> str | int:
        if isinstance(value, int) and not 2 <= value <= 64:
            raise ValueError("fixed-point hidden_precision must be 2..64 bits, or 'float32'")
        return value

    @property
    def hidden_bits(self) -> int:
        return 32 if self.hidden_precision == "float32" else int(self.hidden_precision)


class GlobalBufferConfig(StrictModel):
    """Global buffer holding the input images."""

    read_energy_per_bit_j: float = Field(
        default=0.0799e-12,
        ge=0,
        description="Energy per bit read, J (ISAAC eDRAM: 20.45 pJ per 256-bit access at 32 nm).",
    )
    write_energy_per_bit_j: float = Field(default=0.0799e-12, ge=0, description="Energy per bit written, J.")
    area_um2: float = Field(
        default=83000.0,
        ge=0,
        description="Area of the global buffer in um^2 at area_reference_node_nm (ISAAC tile eDRAM "
        "buffer 64 KB: 0.083 mm^2 at 32 nm, Table 1).",
    )
    area_reference_node_nm: float | None = area_node_field()
    leakage_w: float = Field(default=0.0, ge=0, description="Static power, W.")
    reference_node_nm: float = Field(default=32.0, ge=5, le=250, description="Node of the energies (nm).")
    reference_vdd_v: float = Field(default=1.0, gt=0, description="Supply of the energies (V).")


class InterconnectConfig(StrictModel):
    """On-chip network between tiles, the DPU ('dpu') and the global buffer ('gbuf')."""

    topology: Literal["bus", "mesh", "tree", "custom"] = Field(
        default="bus",
        description="'bus': one shared medium; 'mesh': 2-D grid of endpoints; 'tree': routers of "
        "arity tree_arity with tiles at the leaves and dpu/gbuf at the root; 'custom': the "
        "links listed in custom_links.",
    )
    input_delivery: Literal["multicast", "unicast"] = Field(
        default="multicast",
        description="How a layer's input vector reaches the tiles of one row block: "
        "'multicast' = one read of the source buffer and one packet along the union of the "
        "routes (a bus broadcast, a tree/mesh multicast tree); 'unicast' = one read and one "
        "packet per tile.",
    )
    link_width_bits: int = Field(default=64, ge=1, description="Bits per interconnect cycle per link.")
    hop_latency_cycles: int = Field(default=1, ge=0, description="Interconnect cycles per hop (router/bus arbitration).")
    energy_per_bit_j: float = Field(
        default=0.054e-12,
        ge=0,
        description="Energy per bit per hop, J (ISAAC eDRAM-to-IMA bus 0.054 pJ/bit at 32 nm; "
        "hwcomponents-library isaac.py).",
    )
    mesh_columns: int | None = Field(
        default=None, ge=1, description="Width of the mesh grid; None = ceil(sqrt(endpoints))."
    )
    tree_arity: int = Field(default=4, ge=2, description="Children per router of the tree.")
    custom_links: list[tuple[str, str]] = Field(
        default_factory=list,
        description="For 'custom': undirected links between nodes named 'tile<i>' (0-based), "
        "'dpu', 'gbuf' or any router name.",
    )
    leakage_w: float = Field(default=0.0, ge=0, description="Static power of the whole network, W.")
    router_area_um2: float = Field(
        default=150000.0,
        ge=0,
        description="Area of one router with 256-bit ports in um^2 at area_reference_node_nm (ISAAC "
        "router shared by 4 tiles: 0.151 mm^2 at 32 nm, Table 1); scaled linearly with "
        "link_width_bits / 256 (hwcomponents-library IsaacRouter width rule). Mesh: one router "
        "per endpoint; tree/custom: one per router node; bus: none.",
    )
    link_area_um2_per_bit: float = Field(
        default=29.296875,
        ge=0,
        description="Wiring area of one link per bit of width in um^2 at area_reference_node_nm "
        "(ISAAC eDRAM-to-IMA bus: 7500 um^2 for 256 bits at 32 nm; hwcomponents-library isaac.py).",
    )
    area_reference_node_nm: float | None = area_node_field()
    reference_node_nm: float = Field(default=32.0, ge=5, le=250, description="Node of the energy (nm).")
    reference_vdd_v: float = Field(default=1.0, gt=0, description="Supply of the energy (V).")


class HardwareConfig(StrictModel):
    """The chip a workload runs on."""

    name: str = Field(default="hardware", min_length=1, description="Preset name shown in reports.")
    description: str = Field(default="", description="Free text shown in reports.")
    device: DeviceConfig = Field(default_factory=DeviceConfig, description="Memristive device model.")
    technology: TechnologyConfig = Field(default_factory=TechnologyConfig)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    tile: TileConfig = Field(default_factory=TileConfig)
    dac: DacConfig = Field(default_factory=DacConfig)
    adc: AdcConfig = Field(default_factory=AdcConfig)
    crossbar: CrossbarConfig = Field(default_factory=CrossbarConfig)
    programming: ProgrammingConfig = Field(default_factory=ProgrammingConfig)
    dpu: DpuConfig = Field(default_factory=DpuConfig)
    global_buffer: GlobalBufferConfig = Field(default_factory=GlobalBufferConfig)
    interconnect: InterconnectConfig = Field(default_factory=InterconnectConfig)
    schedule: Literal["fast", "exact"] = Field(
        default="fast",
        description="'fast' reuses the simulated schedule of a batch shape already seen (the "
        "write phase is simulated per batch); 'exact' runs every batch through SimPy. Both give "
        "identical totals.",
    )
    images_per_token: int | None = Field(
        default=None,
        ge=1,
        description="Images a tile handles as one SimPy operation (token) in a batch; 1 "
        "simulates every image separately. None = ceil(batch / max_tokens_per_batch).",
    )
    max_tokens_per_batch: int = Field(
        default=32,
        ge=1,
        description="With images_per_token None: the batch is cut into at most this many "
        "tokens per tile (bounds the SimPy event count; docs/architecture.md §5 gives the error).",
    )
    trace_batches: int = Field(
        default=3, ge=0, description="Batches (training and evaluation) recorded in the Perfetto trace."
    )

    @field_validator("device", mode="before")
    @classmethod
    def _device_preset(cls, value: object) -> object:
        """``device: {preset: hfo2-130nm, read_noise_sigma: 0.02}``: the shipped device preset
        ``hwconfigs/devices/hfo2-130nm.yaml`` (or a YAML file path) with those fields replaced."""
        if not isinstance(value, dict) or "preset" not in value:
            return value
        from archsim.devices import load_device_preset
        from archsim.errors import ConfigError

        try:
            preset = load_device_preset(str(value["preset"])).model_dump(mode="json")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return preset | {k: v for k, v in value.items() if k != "preset"}

    @property
    def weight_encoding(self) -> str:
        """The tile encoding of signed weights (tile setting, else the device mapping)."""
        if self.tile.weight_encoding is not None:
            return self.tile.weight_encoding
        return getattr(self.device, "mapping", "differential")

    @model_validator(mode="after")
    def _consistent(self) -> "HardwareConfig":
        encoding = self.weight_encoding
        device_mapping = getattr(self.device, "mapping", None)
        if (
            self.tile.weight_encoding is not None
            and device_mapping is not None
            and device_mapping != self.tile.weight_encoding
        ):
            raise ValueError(
                f"tile.weight_encoding '{self.tile.weight_encoding}' disagrees with device.mapping "
                f"'{device_mapping}'; set one of them (or both alike)"
            )
        if self.tile.cols < 2:
            raise ValueError(
                f"tile.cols = {self.tile.cols}: '{encoding}' weights need at least 2 columns per tile"
            )
        if self.interconnect.topology == "custom":
            check_custom_topology(self)
        elif self.interconnect.custom_links:
            raise ValueError("interconnect.custom_links is only used with topology 'custom'")
        return self


def check_custom_topology(hw: HardwareConfig) -> None:
    """Every tile must reach the DPU and the global buffer through the listed links."""
    import networkx as nx

    if hw.tile.count is None:
        raise ValueError("a 'custom' interconnect needs tile.count (the links name every tile)")
    graph = nx.Graph()
    tiles = [f"tile{i}" for i in range(hw.tile.count)]
    graph.add_nodes_from(tiles)
    graph.add_nodes_from(ENDPOINTS)
    for a, b in hw.interconnect.custom_links:
        for node in (a, b):
            if node.startswith("tile") and node not in tiles:
                raise ValueError(
                    f"interconnect.custom_links names {node}, but tiles are tile0..tile{hw.tile.count - 1}"
                )
        graph.add_edge(a, b)
    reachable = nx.node_connected_component(graph, "dpu")
    missing = [n for n in (*tiles, "gbuf") if n not in reachable]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(
            f"interconnect leaves {shown} unreachable from the dpu; add links so every tile "
            "reaches the dpu and gbuf"
        )


__all__ = [
    "AdcConfig",
    "ClockConfig",
    "CrossbarConfig",
    "DacConfig",
    "DpuConfig",
    "GlobalBufferConfig",
    "HardwareConfig",
    "InterconnectConfig",
    "ProgrammingConfig",
    "TechnologyConfig",
    "TileConfig",
]
