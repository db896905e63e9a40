"""The benchmarked convolution shapes and the targets they are held to."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Target: time(minidl) / time(PyTorch): for a conv the geometric mean of forward and
# forward+backward; "train" is the LeNet-5 step, "main_job" an epoch of train_digits.py.
TARGETS = {"small": 0.7, "large": 1.25, "depthwise": 1.0, "other": 1.5, "train": 0.8,
           "main_job": 0.8}
# The speed issue's targets, per group: the geometric mean of the group's figures above
# (a conv's: geomean of forward and forward+backward), on every instruction-set path.
GROUP_TARGETS = {"small": 0.8, "large": 1.0, "depthwise": 0.9, "other": 1.2, "train": 0.8,
                 "main_job": 0.8}
GROUP_LABEL = {"small": "small convs", "large": "large convs", "depthwise": "depthwise 3x3",
               "other": "conv1d, conv3d, ConvTranspose2d", "train": "LeNet-5 training step",
               "main_job": "main job epoch"}
SGEMM_FRACTION_TARGET = 0.75  # 3x3 ResNet shapes: minidl GFLOP/s vs the measured sgemm peak
MEMORY_TARGET = 1.5  # peak memory of forward+backward, minidl / PyTorch
MEMORY_CASE = "resnet_3x3_64@56"
PASSES = ("forward", "backward", "forward_backward")
PASS_FLOP_FACTOR = {"forward": 1, "backward": 2, "forward_backward": 3}  # dx and dw cost 1 each


@dataclass(frozen=True)
class ConvCase:
    """One convolution: input (batch, in_channels, *spatial), square kernel, no bias.

    ``transposed``: a ConvTranspose, weight (in_channels, out_channels / groups, *kernel).
    """

    name: str
    label: str
    category: str
    batch: int
    in_channels: int
    out_channels: int
    spatial: tuple[int, ...]
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    transposed: bool = False
    sgemm_target: bool = False

    @property
    def nd(self) -> int:
        return len(self.spatial)

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return (self.kernel,) * self.nd

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.spatial)

    @property
    def w_shape(self) -> tuple[int, ...]:
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @property
    def out_spatial(self) -> tuple[int, ...]:
        k, s, p = self.kernel, self.stride, self.padding
        if self.transposed:
            return tuple((n - 1) * s - 2 * p + k for n in self.spatial)
        return tuple((n + 2 * p - k) // s + 1 for n in self.spatial)

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels, *self.out_spatial)

    @property
    def macs(self) -> int:
        """Multiply-adds of the forward pass (a transposed conv: those of its adjoint conv)."""
        per_position = self.in_channels * self.out_channels // self.groups * self.kernel**self.nd
        positions = math.prod(self.spatial if self.transposed else self.out_spatial)
        return self.batch * positions * per_position

    def gflop(self, pass_name: str) -> float:
        return 2 * self.macs * PASS_FLOP_FACTOR[pass_name] / 1e9

    @property
    def target(self) -> float:
        return TARGETS[self.category]


CASES: tuple[ConvCase, ...] = (
    # small convs: LeNet-5 (batch 64) and a digits CNN (batch 32)
    ConvCase("lenet_conv1", "LeNet-5 conv1 1->6 5x5 p2 @28x28, N=64", "small",
             batch=64, in_channels=1, out_channels=6, spatial=(28, 28), kernel=5, padding=2),
    ConvCase("lenet_conv2", "LeNet-5 conv2 6->16 5x5 @14x14, N=64", "small",
             batch=64, in_channels=6, out_channels=16, spatial=(14, 14), kernel=5),
    ConvCase("digits_conv", "digits CNN 16->32 3x3 p1 @8x8, N=32", "small",
             batch=32, in_channels=16, out_channels=32, spatial=(8, 8), kernel=3, padding=1),
    ConvCase("cifar_conv1", "CIFAR CNN conv1 3->32 3x3 p1 @32x32, N=64", "small",
             batch=64, in_channels=3, out_channels=32, spatial=(32, 32), kernel=3, padding=1),
    # large convs: ResNet shapes at batch 8
    ConvCase("resnet_3x3_64@56", "ResNet 3x3 64->64 p1 @56x56, N=8", "large",
             batch=8, in_channels=64, out_channels=64, spatial=(56, 56), kernel=3, padding=1,
             sgemm_target=True),
    ConvCase("resnet_3x3_256@14", "ResNet 3x3 256->256 p1 @14x14, N=8", "large",
             batch=8, in_channels=256, out_channels=256, spatial=(14, 14), kernel=3, padding=1,
             sgemm_target=True),
    ConvCase("vgg_3x3_128@28", "VGG 3x3 128->128 p1 @28x28, N=8", "large",
             batch=8, in_channels=128, out_channels=128, spatial=(28, 28), kernel=3, padding=1),
    ConvCase("resnet_3x3s2_64to128@56", "ResNet 3x3/2 64->128 p1 @56x56, N=8", "large",
             batch=8, in_channels=64, out_channels=128, spatial=(56, 56), kernel=3, stride=2,
             padding=1),
    ConvCase("resnet_1x1_256to64@56", "ResNet 1x1 256->64 @56x56, N=8", "large",
             batch=8, in_channels=256, out_channels=64, spatial=(56, 56), kernel=1),
    ConvCase("resnet_stem_7x7s2", "ResNet stem 3->64 7x7/2 p3 @224x224, N=8", "large",
             batch=8, in_channels=3, out_channels=64, spatial=(224, 224), kernel=7, stride=2,
             padding=3),
    ConvCase("depthwise_3x3_128@56", "depthwise 3x3 128 ch p1 @56x56, N=8", "depthwise",
             batch=8, in_channels=128, out_channels=128, spatial=(56, 56), kernel=3, padding=1,
             groups=128),
    # other dimensionalities and the transposed conv
    ConvCase("conv1d_k9_64@4096", "conv1d 64->64 k9 p4 @4096, N=16", "other",
             batch=16, in_channels=64, out_channels=64, spatial=(4096,), kernel=9, padding=4),
    ConvCase("conv3d_3x3x3_16to32", "conv3d 16->32 3x3x3 p1 @16x56x56, N=2", "other",
             batch=2, in_channels=16, out_channels=32, spatial=(16, 56, 56), kernel=3, padding=1),
    ConvCase("convT2d_4x4s2_256to128", "ConvTranspose2d 256->128 4x4/2 p1 8x8->16x16, N=16",
             "other", batch=16, in_channels=256, out_channels=128, spatial=(8, 8), kernel=4,
             stride=2, padding=1, transposed=True),
)

QUICK_BATCH = 2  # --quick: the batch-8 shapes (ResNet, depthwise) run at this batch


def quick_cases(cases: tuple[ConvCase, ...] = CASES) -> tuple[ConvCase, ...]:
    """The shapes of a --quick run: the batch-8 ones at batch QUICK_BATCH."""
    return tuple(_shrink(case) for case in cases)


def _shrink(case: ConvCase) -> ConvCase:
    if case.batch != 8:
        return case
    label = case.label.replace("N=8", f"N={QUICK_BATCH}")
    return replace(case, batch=QUICK_BATCH, label=label)


def case_by_name(name: str, cases: tuple[ConvCase, ...] = CASES) -> ConvCase:
    for case in cases:
        if case.name == name:
            return case
    raise KeyError(f"no benchmark case named {name!r}; known: {[c.name for c in cases]}")
