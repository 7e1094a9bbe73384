"""Vision models with torchvision's module names, so state_dict keys match: LeNet, ResNet-18/34."""
from __future__ import annotations

from .. import nn

__all__ = ["LeNet", "ResNet", "BasicBlock", "resnet18", "resnet34"]


class LeNet(nn.Module):
    """The MNIST CNN of examples/mnist_cnn.py: two 5x5 convolutions with max pooling, three
    linear layers.

    Shape: (B, 1, 28, 28) -> (B, num_classes)
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):                                   # (B, 1, 28, 28)
        x = self.pool(self.conv1(x).relu())                 # (B, 6, 14, 14)
        x = self.pool(self.conv2(x).relu())                 # (B, 16, 5, 5)
        x = x.flatten(1)                                    # (B, 400)
        x = self.fc1(x).relu()                              # (B, 120)
        x = self.fc2(x).relu()                              # (B, 84)
        return self.fc3(x)                                  # (B, num_classes)


def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation,
                     groups=groups, bias=False, dilation=dilation)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 dilation=1, norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Deep residual network (He et al. 2015) with torchvision's layout and initialisation.

    Args:
        block: the residual block class (BasicBlock).
        layers: blocks per stage, e.g. [2, 2, 2, 2] for ResNet-18.
        num_classes: outputs of the final `fc` layer.
        zero_init_residual: start each block's last batch-norm scale at zero.
        norm_layer: the normalisation module (default nn.BatchNorm2d).

    Shape: (B, 3, H, W) -> (B, num_classes); H and W of at least 32 keep every stage non-empty.
    """

    def __init__(self, block, layers, num_classes: int = 1000, zero_init_residual: bool = False,
                 groups: int = 1, width_per_group: int = 64, replace_stride_with_dilation=None,
                 norm_layer=None):
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        if replace_stride_with_dilation not in (None, [False, False, False],
                                                (False, False, False)):
            raise NotImplementedError("ResNet: replace_stride_with_dilation needs dilated "
                                      "blocks, which BasicBlock does not support")
        self.inplanes = 64
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        norm_layer = self._norm_layer
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       norm_layer(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                        self.dilation, norm_layer)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups,
                                base_width=self.base_width, dilation=self.dilation,
                                norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x):                                   # (B, 3, H, W)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))   # (B, 64, H/4, W/4)
        x = self.layer1(x)
        x = self.layer2(x)                                  # (B, 128, H/8, W/8)
        x = self.layer3(x)                                  # (B, 256, H/16, W/16)
        x = self.layer4(x)                                  # (B, 512, H/32, W/32)
        x = self.avgpool(x).flatten(1)                      # (B, 512)
        return self.fc(x)                                   # (B, num_classes)


def _resnet(name, layers, weights, kwargs):
    if weights is not None:
        raise ValueError(f"{name}(weights={weights!r}): clgrad.vision downloads no pretrained "
                         f"weights (no network). Build with weights=None and load a state_dict "
                         f"you have, e.g. model.load_state_dict(clgrad.load(path)) or "
                         f"clgrad.safetensors.load_file(path).")
    kwargs.pop("progress", None)
    return ResNet(BasicBlock, layers, **kwargs)


def resnet18(*, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]); keyword arguments go to ResNet (num_classes=...)."""
    return _resnet("resnet18", [2, 2, 2, 2], weights, kwargs)


def resnet34(*, weights=None, progress: bool = True, **kwargs) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3]); keyword arguments go to ResNet (num_classes=...)."""
    return _resnet("resnet34", [3, 4, 6, 3], weights, kwargs)
