"""torchvision ResNet-18 / ResNet-50 (ImageNet architectures), built without weights.

``small_input=True`` swaps the ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool, which
shrinks the input 4x before the first block) for a 3x3 stride-1 conv and no max-pool. That is the
usual adaptation for CIFAR-size images (as in the lottery-ticket and open_lth code): on a 32x32
input the ImageNet stem would leave only 8x8 feature maps for the first stage.

Weights are never downloaded (``weights=None``); the models start from torchvision's own
initialization, and a replaced stem conv gets the same He initialization as the rest.
"""

from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models.resnet import ResNet

#: torchvision constructors for the names this module builds.
CONSTRUCTORS = {
    "resnet18": torchvision.models.resnet18,
    "resnet50": torchvision.models.resnet50,
}

STEM_WIDTH = 64  # output channels of torchvision's stem conv, for every ResNet depth


def build_torchvision_resnet(name: str, num_classes: int, in_channels: int = 3, small_input: bool = True) -> ResNet:
    """Build ``"resnet18"`` or ``"resnet50"`` with a fresh ``num_classes``-way ``fc`` head.

    Args:
        name: ``"resnet18"`` or ``"resnet50"``.
        num_classes: width of the linear head.
        in_channels: channels of the input images; the stem conv is rebuilt when it is not 3.
        small_input: use the 3x3 stride-1 stem without max-pool (for inputs around 32x32).
    """
    if name not in CONSTRUCTORS:
        raise ValueError(f"unknown torchvision ResNet {name!r}; choose one of {sorted(CONSTRUCTORS)}")
    model = CONSTRUCTORS[name](weights=None, num_classes=num_classes)
    if small_input:
        model.conv1 = _he_init(nn.Conv2d(in_channels, STEM_WIDTH, 3, stride=1, padding=1, bias=False))
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = _he_init(nn.Conv2d(in_channels, STEM_WIDTH, 7, stride=2, padding=3, bias=False))
    return model


def _he_init(conv: nn.Conv2d) -> nn.Conv2d:
    # Match torchvision's ResNet.__init__, which only initializes the convs it created itself.
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv
