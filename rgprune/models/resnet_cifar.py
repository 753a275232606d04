"""CIFAR-style ResNets of He et al. 2016 ("Deep Residual Learning", section 4.2).

The network is a 3x3 stem conv with 16 channels, then three stages of ``n`` basic blocks with
16, 32 and 64 channels (the first block of stages 2 and 3 halves the spatial size), then global
average pooling and a linear head. Depth is ``6n + 2``: ResNet-20 has n = 3 (~0.27M parameters),
ResNet-56 has n = 9 (~0.85M parameters), as in Table 6 of the paper; ResNet-8, -14 and -32 (n = 1, 2, 5;
~0.08M, ~0.17M, ~0.46M) complete a depth series.

Shortcuts use **option A** of the paper, the one used for its CIFAR-10 results: when a block
changes shape, the identity is subsampled with stride 2 and the new channels are zero-padded, so
shortcuts have no parameters. This keeps the parameter counts equal to the paper's, and means
every prunable weight sits on the residual path.

Module names follow torchvision where they can (``conv1``/``bn1`` stem, ``layer1..3`` stages,
``fc`` head), so that code which addresses ResNet parameters by name works for both families.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Blocks per stage for the named depths (depth = 6 n + 2).
BLOCKS_PER_STAGE = {"resnet8": 1, "resnet14": 2, "resnet20": 3, "resnet32": 5, "resnet56": 9}

STAGE_WIDTHS = (16, 32, 64)


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad the extra channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"a zero-padding shortcut can only add channels, got {in_channels} -> {out_channels}")
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads the last dims first: (W_left, W_right, H_top, H_bottom, C_front, C_back).
        # Padding channels on both sides (as the reference implementations do) keeps the
        # original channels in the middle of the new ones; either side is equally valid.
        front = self.extra_channels // 2
        back = self.extra_channels - front
        return F.pad(x, (0, 0, 0, 0, front, back))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (post-activation, as in the paper)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = ZeroPadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small (e.g. 32x32) images with option-A shortcuts.

    Args:
        blocks_per_stage: ``n``, the number of basic blocks in each of the three stages.
        num_classes: width of the linear head.
        in_channels: channels of the input images (3 for RGB, 1 for grayscale).
    """

    def __init__(self, blocks_per_stage: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage}")
        self.blocks_per_stage = blocks_per_stage
        self.conv1 = nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        widths_in = (STAGE_WIDTHS[0],) + STAGE_WIDTHS[:-1]
        strides = (1, 2, 2)
        self.layer1 = self._make_stage(widths_in[0], STAGE_WIDTHS[0], strides[0])
        self.layer2 = self._make_stage(widths_in[1], STAGE_WIDTHS[1], strides[1])
        self.layer3 = self._make_stage(widths_in[2], STAGE_WIDTHS[2], strides[2])
        self.fc = nn.Linear(STAGE_WIDTHS[-1], num_classes)
        self._init_weights()

    def _make_stage(self, in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(in_channels, out_channels, stride)]
        blocks += [BasicBlock(out_channels, out_channels) for _ in range(self.blocks_per_stage - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        # He initialization for convs (the paper's choice, He et al. 2015), the same scheme
        # torchvision uses, so both ResNet families start from comparable weight scales.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return self.fc(out)


def build_cifar_resnet(name: str, num_classes: int, in_channels: int = 3) -> CifarResNet:
    """Build one of :data:`BLOCKS_PER_STAGE`' ResNets, e.g. ``"resnet20"`` (randomly initialized; there are no
    pretrained weights)."""
    if name not in BLOCKS_PER_STAGE:
        raise ValueError(f"unknown CIFAR ResNet {name!r}; choose one of {sorted(BLOCKS_PER_STAGE)}")
    return CifarResNet(BLOCKS_PER_STAGE[name], num_classes=num_classes, in_channels=in_channels)
