"""The network as a layer list (``model.layers``) and the plan every other part reads.

A workload describes its network either as ``hidden: [1024]`` (an MLP, shorthand) or as a
layer list::

    layers:
      - {type: conv2d, out_channels: 8, kernel: 3, padding: 1}
      - {type: pool2d, kind: max, kernel: 2}
      - {type: dense, units: 10}

:func:`build_plan` chains the shapes from the input image (channels x height x width) and
turns the list into :class:`WeightedLayer` entries, one per layer that holds weights on the
crossbars (conv2d or dense). A pool2d belongs to the weighted layer before it: it pools that
layer's pre-activations before its batch-norm and activation (conv -> pool -> batch-norm ->
sign), the order of Laborieux et al. 2021's metaplastic ConvBNN
(github.com/Laborieux-Axel/SynapticMetaplasticityBNN, Stream_Learning_CIFAR10_Fig-4b/
model_utils.py: BinarizeConv2d, MaxPool2d, BatchNorm2d, Hardtanh), because max-pooling
binary outputs would throw away the magnitude that the pooling is meant to select on. The feature maps are
flattened (height, width, channel order) before the first dense layer.

This module is arithmetic only (no numpy), so configuration validation needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

from archsim.config.base import StrictModel


class DenseLayer(StrictModel):
    """A fully connected layer: ``units`` outputs, batch-norm, activation (none after the last)."""

    type: Literal["dense"]
    units: int = Field(ge=1, description="Outputs (neurons) of the layer.")


class Conv2dLayer(StrictModel):
    """A 2-D convolution without bias, unrolled onto the crossbars (im2col: the kernel's
    in_channels x kernel x kernel weights are the rows, one column per output channel)."""

    type: Literal["conv2d"]
    out_channels: int = Field(ge=1, le=65536, description="Output channels (kernels).")
    kernel: int = Field(ge=1, le=64, description="Kernel height and width (square), pixels.")
    stride: int = Field(default=1, ge=1, le=64, description="Step between windows, pixels.")
    padding: int = Field(default=0, ge=0, le=63, description="Zeros added on every side, pixels.")
    replicas: int = Field(
        default=1, ge=1, le=4096,
        description="Mapping: copies of the kernel on the chip, each streaming 1/replicas of "
        "the windows (area for latency, ISAAC's replication of early layers). No effect on "
        "learning; every copy is programmed on every weight change.",
    )


class Pool2dLayer(StrictModel):
    """Non-overlapping pooling (window = stride = ``kernel``) of the convolution before it,
    done by the digital unit."""

    type: Literal["pool2d"]
    kind: Literal["max", "avg"] = Field(default="max", description="'max' or 'avg' pooling.")
    kernel: int = Field(default=2, ge=1, le=64, description="Window size and stride, pixels.")


def layer_type(value: Any) -> str | None:
    """The ``type`` of a layer entry (a mapping from YAML, or a layer model)."""
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


LayerSpec = Annotated[
    Union[Annotated[DenseLayer, Tag("dense")], Annotated[Conv2dLayer, Tag("conv2d")],
          Annotated[Pool2dLayer, Tag("pool2d")]],
    Discriminator(layer_type, custom_error_type="layer_type",
                  custom_error_message="each layer needs 'type: dense', 'type: conv2d' or 'type: pool2d'"),
]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length along one axis: floor((size + 2*padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class WeightedLayer:
    """One layer with weights on the crossbars, with what its forward pass does around them.

    The weights are an ``n_in x n_out`` matrix in both cases: a dense layer's inputs by its
    units, a convolution's in_channels*kernel*kernel (rows ordered channel, ky, kx) by its
    output channels. A convolution applies it to ``windows`` input vectors per image.
    """

    kind: Literal["dense", "conv2d"]
    n_in: int
    n_out: int
    in_shape: tuple[int, int, int]
    """(channels, height, width) of the input; (n_in, 1, 1) for a dense layer."""
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    out_hw: tuple[int, int] = (1, 1)
    """Height and width of the convolution's output, before pooling."""
    pools: tuple[tuple[str, int], ...] = ()
    """(kind, kernel) of each pooling applied to the pre-activations, in order."""
    replicas: int = 1

    @property
    def is_conv(self) -> bool:
        return self.kind == "conv2d"

    @property
    def windows(self) -> int:
        """Matrix-vector products per image: output positions of a convolution, 1 for dense."""
        return self.out_hw[0] * self.out_hw[1]

    @property
    def pooled_hw(self) -> tuple[int, int]:
        h, w = self.out_hw
        for _, size in self.pools:
            h, w = h // size, w // size
        return h, w

    @property
    def positions(self) -> int:
        """Output positions per image after pooling (batch-norm and activation act on these)."""
        h, w = self.pooled_hw
        return h * w

    @property
    def weights(self) -> int:
        return self.n_in * self.n_out

    def describe(self) -> str:
        if not self.is_conv:
            return str(self.n_out)
        text = f"conv{self.kernel}x{self.kernel}x{self.n_out}"
        if self.stride != 1:
            text += f"s{self.stride}"
        if self.padding:
            text += f"p{self.padding}"
        for kind, size in self.pools:
            text += f"-{kind}pool{size}"
        return text


def describe_plan(plan: tuple[WeightedLayer, ...]) -> str:
    """Short name of a network, e.g. 784-1024-10 or 1x28x28-conv3x3x8p1-maxpool2-10."""
    first = plan[0]
    start = "x".join(str(n) for n in first.in_shape) if first.is_conv else str(first.n_in)
    return "-".join([start, *(layer.describe() for layer in plan)])


class LayerListError(ValueError):
    """A layer list whose shapes do not chain; the message names the layer and the fix."""


def build_plan(layers: list, input_shape: tuple[int, int, int], n_classes: int) -> tuple[WeightedLayer, ...]:
    """The weighted layers of ``layers`` (DenseLayer / Conv2dLayer / Pool2dLayer), shapes
    chained from ``input_shape`` = (channels, height, width); LayerListError otherwise."""
    if not layers:
        raise LayerListError("model.layers is empty; give at least the output layer "
                             f"'- {{type: dense, units: {n_classes}}}'")
    plan: list[dict] = []
    channels, height, width = input_shape
    flat: int | None = None  # inputs once flattened (after the first dense layer)
    for index, spec in enumerate(layers):
        where = f"model.layers[{index}] ({spec.type})"
        if isinstance(spec, Conv2dLayer):
            if flat is not None:
                raise LayerListError(f"{where} follows a dense layer; put every conv2d before the "
                                     "first dense layer (the feature maps are flattened there)")
            if spec.padding >= spec.kernel:
                raise LayerListError(f"{where}: padding {spec.padding} is not smaller than kernel "
                                     f"{spec.kernel}; use padding <= {spec.kernel - 1}")
            if spec.kernel > height + 2 * spec.padding or spec.kernel > width + 2 * spec.padding:
                raise LayerListError(
                    f"{where}: kernel {spec.kernel} is larger than its padded {channels}x{height}x{width} "
                    f"input ({height + 2 * spec.padding}x{width + 2 * spec.padding} with padding "
                    f"{spec.padding}); use kernel <= {min(height, width) + 2 * spec.padding} or more padding")
            oh = conv_output_size(height, spec.kernel, spec.stride, spec.padding)
            ow = conv_output_size(width, spec.kernel, spec.stride, spec.padding)
            plan.append(dict(kind="conv2d", n_in=channels * spec.kernel ** 2, n_out=spec.out_channels,
                             in_shape=(channels, height, width), kernel=spec.kernel, stride=spec.stride,
                             padding=spec.padding, out_hw=(oh, ow), pools=(), replicas=spec.replicas))
            channels, height, width = spec.out_channels, oh, ow
        elif isinstance(spec, Pool2dLayer):
            if not plan or plan[-1]["kind"] != "conv2d":
                raise LayerListError(f"{where} must follow a conv2d (or another pool2d after one): "
                                     "it pools that convolution's outputs; move or remove it")
            if spec.kernel > height or spec.kernel > width:
                raise LayerListError(f"{where}: kernel {spec.kernel} is larger than its "
                                     f"{channels}x{height}x{width} input; use kernel <= {min(height, width)}")
            plan[-1]["pools"] = (*plan[-1]["pools"], (spec.kind, spec.kernel))
            height, width = height // spec.kernel, width // spec.kernel
        else:
            n_in = channels * height * width if flat is None else flat
            plan.append(dict(kind="dense", n_in=n_in, n_out=spec.units, in_shape=(n_in, 1, 1)))
            flat = spec.units
    last = layers[-1]
    if not isinstance(last, DenseLayer) or last.units != n_classes:
        raise LayerListError(f"model.layers must end with the output layer '- {{type: dense, units: "
                             f"{n_classes}}}' (one unit per class); add or fix it")
    return tuple(WeightedLayer(**entry) for entry in plan)


def mlp_layers(hidden: list[int], n_classes: int) -> list[DenseLayer]:
    """The layer list ``hidden: [...]`` is shorthand for."""
    return [DenseLayer(type="dense", units=n) for n in (*hidden, n_classes)]
