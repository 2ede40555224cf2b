"""Convolutional networks end to end: layer lists, learning, mapping, window scheduling."""

from __future__ import annotations

import numpy as np
import pytest

from archsim.config import RunConfig, load_run_config, validate
from archsim.config.workload import ModelConfig
from archsim.engine import build_architecture
from archsim.errors import ConfigError
from archsim.experiment import run_experiment
from archsim.hw.chip import build_chip
from archsim.learning.network import Mlp, softmax_cross_entropy
from archsim.mapping.mapper import map_network
from archsim.runner import execute

TASK = {"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": 200, "test_limit": 100}
CNN_LAYERS = [
    {"type": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
    {"type": "pool2d", "kind": "max", "kernel": 2},
    {"type": "conv2d", "out_channels": 6, "kernel": 3, "stride": 2},
    {"type": "pool2d", "kind": "avg", "kernel": 2},
    {"type": "dense", "units": 10},
]


LEARNS = {"train_limit": 1000, "epochs": 2}  # enough for a small CNN to beat chance clearly
LEARNING_LAYERS = [  # 8 x 7 x 7 = 392 binary features: 60-80 % after 2 epochs of 1000 images
    {"type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
    {"type": "pool2d", "kind": "max", "kernel": 2},
    {"type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
    {"type": "pool2d", "kind": "max", "kernel": 2},
    {"type": "dense", "units": 10},
]


def config(model: dict, hardware: str | dict | None = None, task: dict | None = None, **learning) -> RunConfig:
    learning = {"optimizer": {"lr": 0.02}, **learning}
    tree = {
        "tasks": [{**TASK, **(task or {})}],
        "model": {"levels": 3, "init_width": 2.0, **model},
        "learning": {"batch_size": 50, **learning},
        "data": {"validation_size": 100},
        "eval_batch_size": 100,
    }
    if isinstance(hardware, str):
        from archsim.config.loader import read_yaml_mapping, resolve_preset_path

        tree["hardware"] = read_yaml_mapping(resolve_preset_path(hardware, "hwconfigs"))
    elif hardware is not None:
        tree["hardware"] = hardware
    return validate(RunConfig, tree, "cnn-test")


# ---- the layer list -------------------------------------------------------------------------
def test_plan_chains_shapes_from_the_input():
    plan = ModelConfig(layers=CNN_LAYERS).plan
    assert [layer.kind for layer in plan] == ["conv2d", "conv2d", "dense"]
    # 28x28 -> conv3 p1 -> 28x28 -> max2 -> 14x14 -> conv3 s2 -> 6x6 -> avg2 -> 3x3 x 6 = 54
    assert (plan[0].n_in, plan[0].n_out, plan[0].windows, plan[0].positions) == (9, 4, 784, 196)
    assert (plan[1].n_in, plan[1].n_out, plan[1].out_hw, plan[1].positions) == (36, 6, (6, 6), 9)
    assert (plan[2].n_in, plan[2].n_out) == (54, 10)


@pytest.mark.parametrize("layers,says", [
    ([{"type": "dense", "units": 32}, {"type": "conv2d", "out_channels": 4, "kernel": 3},
      {"type": "dense", "units": 10}], "model.layers[1] (conv2d) follows a dense layer"),
    ([{"type": "pool2d"}, {"type": "dense", "units": 10}], "model.layers[0] (pool2d) must follow a conv2d"),
    ([{"type": "conv2d", "out_channels": 4, "kernel": 29}, {"type": "dense", "units": 10}],
     "model.layers[0] (conv2d): kernel 29 is larger than its padded 1x28x28 input"),
    ([{"type": "conv2d", "out_channels": 4, "kernel": 3, "padding": 3}, {"type": "dense", "units": 10}],
     "padding 3 is not smaller than kernel 3"),
    ([{"type": "conv2d", "out_channels": 4, "kernel": 5, "stride": 5}, {"type": "pool2d", "kernel": 4},
      {"type": "pool2d", "kernel": 2}, {"type": "dense", "units": 10}],
     "model.layers[2] (pool2d): kernel 2 is larger than its 4x1x1 input"),
    ([{"type": "conv2d", "out_channels": 4, "kernel": 3}, {"type": "dense", "units": 12}],
     "must end with the output layer '- {type: dense, units: 10}'"),
    ([{"type": "conv", "out_channels": 4}, {"type": "dense", "units": 10}], "'type: conv2d'"),
])
def test_bad_layer_lists_give_one_clear_line(tmp_path, layers, says):
    path = tmp_path / "w.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"tasks": [TASK], "model": {"layers": layers}}))
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    message = str(err.value)
    assert says in message and "\n" not in message, message


def test_hidden_and_layers_are_exclusive(tmp_path):
    with pytest.raises(ConfigError, match="either model.hidden .* or model.layers"):
        config({"hidden": [16], "layers": CNN_LAYERS})


def test_dense_layer_list_equals_hidden_shorthand():
    """A pure-dense layer list and ``hidden`` give the same network, draws and results."""
    short = config({"hidden": [24]})
    listed = config({"layers": [{"type": "dense", "units": 24}, {"type": "dense", "units": 10}]})
    assert short.model.plan == listed.model.plan
    a, b = run_experiment(short), run_experiment(listed)
    assert a.accuracy == b.accuracy and a.validation_accuracy == b.validation_accuracy
    assert a.train_loss == b.train_loss
    for wa, wb in zip(a.write_counts, b.write_counts):
        np.testing.assert_array_equal(wa, wb)


# ---- learning -------------------------------------------------------------------------------
def test_cnn_gradients_match_finite_differences():
    """conv -> max pool -> per-channel batch-norm -> tanh -> conv -> avg pool -> dense: the
    network's backward pass against central differences of the loss, float64."""
    plan = ModelConfig(layers=[
        {"type": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1},
        {"type": "pool2d", "kind": "max", "kernel": 2},
        {"type": "conv2d", "out_channels": 2, "kernel": 3, "stride": 2, "padding": 1},
        {"type": "pool2d", "kind": "avg", "kernel": 2},
        {"type": "dense", "units": 10},
    ]).plan
    rng = np.random.default_rng(0)
    net = Mlp.from_plan(plan, 1.0, rng, sign_hidden=False)
    weights = [w.astype(np.float64) for w in net.hidden]
    net.gamma = [g.astype(np.float64) + rng.normal(size=g.shape) * 0.1 for g in net.gamma]
    x = rng.normal(size=(4, 784))
    y = rng.integers(0, 10, size=4)

    def loss(ws):
        logits, _ = net.forward(x, ws)
        return softmax_cross_entropy(logits, y)[0]

    logits, caches = net.forward(x, weights)
    grads = net.backward(caches, softmax_cross_entropy(logits, y)[1], weights)
    eps = 1e-6
    for layer, index in [(0, (0, 0)), (0, (8, 2)), (1, (5, 1)), (1, (26, 0)), (2, (3, 7))]:
        plus = [w.copy() for w in weights]
        minus = [w.copy() for w in weights]
        plus[layer][index] += eps
        minus[layer][index] -= eps
        numeric = (loss(plus) - loss(minus)) / (2 * eps)
        assert grads.weights[layer][index] == pytest.approx(numeric, rel=1e-4, abs=1e-8), (layer, index)


@pytest.mark.parametrize("rule,levels", [("qnn-meta", 3), ("bnn-meta", 2), ("float32", 3)])
def test_small_cnn_learns_in_software(rule, levels):
    cfg = config({"layers": LEARNING_LAYERS, "levels": levels}, task=LEARNS, rule=rule, m_star=1.0)
    result = run_experiment(cfg)
    # 10 classes: chance is 10 %; measured 0.66 (qnn-meta), 0.71 (bnn-meta), 0.81 (float32)
    assert result.validation_accuracy["after:mnist"]["mnist"] > 0.45
    assert [w.shape for w in result.write_counts] == [(9, 8), (72, 8), (392, 10)]
    if rule != "float32":
        assert sum(int(w.sum()) for w in result.write_counts) > 0


def test_small_cnn_on_the_chip_reports_latency_energy_writes_tiles():
    layers = [{**LEARNING_LAYERS[0], "replicas": 2}, *LEARNING_LAYERS[1:]]
    cfg = config({"layers": layers}, "paper-130nm", task=LEARNS)
    summary, result, hardware = execute(cfg)
    data = summary.model_dump()
    assert data["validation_accuracy"]["after:mnist"]["mnist"] > 0.45  # chance 0.10
    assert data["latency_cycles"]["inference_per_image"] > 0
    assert data["energy_j"]["per_inference_image"] > 0 and data["energy_j"]["total"] > 0
    assert data["writes"]["total"] > 0
    util = data["utilisation"]
    # conv 9x8 twice (replicas), conv 72x8: one 128x128 tile each; dense 392x10: 4 row blocks
    assert util["tiles_used"] == 2 + 1 + 4
    assert [layer["windows_per_image"] for layer in util["layers"]] == [784, 196, 1]
    assert data["area_mm2"]["total"] > 0
    # the device store holds each conv kernel as its im2col matrix, with write counts
    store = hardware.device_store
    assert [w.shape for w in store.write_counts()] == [(9, 8), (72, 8), (392, 10)]
    # every replica is programmed: the chip counts the first layer's changes twice
    first = int(store.write_counts()[0].sum())
    assert data["architecture"]["writes"]["level_changes"] >= 2 * first


# ---- mapping and schedule -------------------------------------------------------------------
def test_im2col_tile_count_by_hand():
    """A 3x3 convolution from 16 to 80 channels on 128x128 differential tiles (64 weights per
    tile row): its im2col matrix is 16*3*3 = 144 rows x 80 columns -> ceil(144/128) = 2 row
    blocks x ceil(80/64) = 2 column blocks = 4 tiles; with 3 replicas 12. The 3x3 conv from 1
    to 16 channels before it is 9 x 16: 1 tile (x 2 replicas = 2); the dense 80*7*7 = 3920 ->
    10 layer: ceil(3920/128) = 31 row blocks x 1 = 31 tiles. Total 2 + 12 + 31 = 45."""
    plan = ModelConfig(layers=[
        {"type": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1, "replicas": 2},
        {"type": "pool2d", "kernel": 2},
        {"type": "conv2d", "out_channels": 80, "kernel": 3, "padding": 1, "replicas": 3},
        {"type": "pool2d", "kernel": 2},
        {"type": "dense", "units": 10},
    ]).plan
    mapping = map_network(plan, 128, 128, "differential", None)
    assert [len(layer.tiles) for layer in mapping.layers] == [2, 12, 31]
    assert mapping.tiles_used == 45
    second = mapping.layers[1]
    assert (second.n_in, second.n_out, second.row_blocks, second.col_blocks) == (144, 80, 2, 2)
    assert [t.replica for t in second.tiles] == [0] * 4 + [1] * 4 + [2] * 4
    assert mapping.utilisation()["weight_copies"] == 9 * 16 * 2 + 144 * 80 * 3 + 3920 * 10


def paper_like_hardware(**tile) -> dict:
    """paper-130nm's converters and clocks (NeuRRAM timing), one image per SimPy token."""
    from archsim.config.loader import read_yaml_mapping, resolve_preset_path

    hw = read_yaml_mapping(resolve_preset_path("paper-130nm", "hwconfigs"))
    hw["tile"] = {**hw["tile"], "count": None, **tile}
    hw["images_per_token"] = 1
    return hw


def test_one_convolution_mvm_latency_by_hand():
    """One window of the first convolution (3x3, 1 -> 8 channels: 9 rows, 8 weight columns =
    16 device columns) on a paper-130nm tile, 500 MHz tile clock (2 ns per cycle):

    * read stage: 8 bit-serial input slices x (DAC 268 ns + read pulse 2 ns) = 2160 ns
      = 1080 cycles;
    * convert stage: one conversion per output after integrating all slices (per_vector);
      with 8 ADCs per tile hard-wired to columns_per_adc = 8 columns each, the 8 differential
      outputs are sensed on columns 0, 2, ..., 14: ADC 0 senses 0, 2, 4, 6 and ADC 1 8..14,
      so 4 rounds x 2.7 us = 10.8 us = 5400 cycles (with the preset's 2 columns per ADC:
      1 round, 1350 cycles).

    The stages pipeline, so the 784 windows of one 28x28 image (padding 1) take 784 x 5400
    cycles of conversion; splitting them over 4 replicas leaves 196 per copy: the single-image
    latency drops by exactly (784 - 196) x 5400 = 3 175 200 cycles.
    """
    layers = [{"type": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
              {"type": "dense", "units": 10}]
    hw = paper_like_hardware()
    hw["adc"] = {**hw["adc"], "columns_per_adc": 8}
    cfg = config({"layers": layers}, hw)
    chip = build_chip(cfg.hardware, 3)
    op = chip.tile.mvm(9, 8, chip.tile.dac.slices(False))
    assert (op.read_cycles, op.convert_cycles) == (1080, 5400)
    arch = build_architecture(cfg)
    assert arch.mapping.layers[0].windows == 784
    single = arch.engine.probe_inference(1) / arch.chip.period_ps["crossbar"]
    assert single >= 784 * 5400 + 1080
    replicated = config({"layers": [{**layers[0], "replicas": 4}, layers[1]]}, hw)
    arch4 = build_architecture(replicated)
    assert arch4.mapping.tiles_used == arch.mapping.tiles_used + 3
    single4 = arch4.engine.probe_inference(1) / arch4.chip.period_ps["crossbar"]
    assert single - single4 == pytest.approx((784 - 196) * 5400, abs=50)


def test_replicated_cnn_fast_and_exact_schedules_agree_with_transposed_backward():
    """The window streams of replicated convolutions (forward and transposed backward on the
    tiles, a mesh with contention) give the same totals when every batch is simulated."""
    layers = [{**CNN_LAYERS[0], "replicas": 3}, CNN_LAYERS[1], {**CNN_LAYERS[2], "replicas": 2},
              *CNN_LAYERS[3:]]
    summaries = {}
    for mode in ("fast", "exact"):
        hw = {"tile": {"rows": 32, "cols": 32}, "interconnect": {"topology": "mesh"},
              "crossbar": {"backward": "transposed"}, "schedule": mode, "trace_batches": 0}
        cfg = config({"layers": layers}, hw, task={"train_limit": 150, "test_limit": 50})
        arch = build_architecture(cfg)
        result = run_experiment(cfg, observer=arch.observer, mvm=arch.mvm)
        summaries[mode] = (result, arch.summary())
    (fast_result, fast), (exact_result, exact) = summaries["fast"], summaries["exact"]
    assert fast_result.accuracy == exact_result.accuracy
    for section in ("latency_cycles", "energy_j", "action_counts", "busy_cycles", "writes"):
        assert fast[section] == exact[section], section
    assert exact["busy_cycles"]["dpu.col2im"] > 0 and exact["busy_cycles"]["dpu.pool"] > 0
    # 32x32 tiles: conv 9x4, 1 tile x 3 replicas; conv 36x6, ceil(36/32) = 2 row blocks x 2
    # replicas; dense 54x10, 2 row blocks
    assert fast["utilisation"]["tiles_used"] == 3 + 4 + 2


def test_cnn_with_running_batch_norm_statistics_classifies_image_by_image():
    cfg = config({"layers": LEARNING_LAYERS, "batchnorm_eval": "running", "bn_per_task": True},
                 task=LEARNS, m_star=1.0)
    result = run_experiment(cfg)
    assert result.validation_accuracy["after:mnist"]["mnist"] > 0.45  # measured 0.61
