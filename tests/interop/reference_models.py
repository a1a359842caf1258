"""PyTorch reference definitions the ardkit model plugins must match key for key.

Written for these tests after the definitions in kuangliu/pytorch-cifar, yaodongyu/TRADES and
VainF/Data-Free-Adversarial-Distillation; the forward passes pool globally, which equals the originals'
fixed avg_pool2d on the input sizes they were written for.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k, stride=1, groups=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = conv(cin, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(conv(cin, planes, 1, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks, channels, classes):
        super().__init__()
        self.conv1 = conv(channels, 64, 3)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (width, n) in enumerate(zip([64, 128, 256, 512], blocks)):
            layers = []
            for b in range(n):
                layers.append(BasicBlock(cin, width, 2 if b == 0 and i > 0 else 1))
                cin = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class PreActBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv(cin, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3)
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(conv(cin, planes, 1, stride))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(nn.Module):
    def __init__(self, channels, classes, final_bn):
        super().__init__()
        self.conv1 = conv(channels, 64, 3)
        cin = 64
        for i, width in enumerate([64, 128, 256, 512]):
            layers = []
            for b in range(2):
                layers.append(PreActBlock(cin, width, 2 if b == 0 and i > 0 else 1))
                cin = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.final_bn = final_bn
        if final_bn:
            self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.final_bn:
            out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride, drop):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.drop = drop
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x):
        if not self.equal:
            x = self.relu1(self.bn1(x))
            out = x
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out)))
        if self.drop > 0:
            out = F.dropout(out, p=self.drop, training=self.training)
        out = self.conv2(out)
        return torch.add(x if self.equal else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, n, cin, cout, stride, drop):
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, drop)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen, channels, classes, drop=0.0, sub_block1=True):
        super().__init__()
        w = [16, 16 * widen, 32 * widen, 64 * widen]
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(channels, w[0], 3, padding=1, bias=False)
        self.block1 = NetworkBlock(n, w[0], w[1], 1, drop)
        if sub_block1:
            self.sub_block1 = NetworkBlock(n, w[0], w[1], 1, drop)
        self.block2 = NetworkBlock(n, w[1], w[2], 2, drop)
        self.block3 = NetworkBlock(n, w[2], w[3], 2, drop)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(w[3], classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class MobileBlock(nn.Module):
    def __init__(self, cin, cout, expansion, stride):
        super().__init__()
        self.stride = stride
        planes = expansion * cin
        self.conv1 = conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, stride, groups=planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, cout, 1)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(conv(cin, cout, 1), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(nn.Module):
    cfg = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
           (6, 320, 1, 1)]

    def __init__(self, channels, classes):
        super().__init__()
        self.conv1 = conv(channels, 32, 3)
        self.bn1 = nn.BatchNorm2d(32)
        layers, cin = [], 32
        for expansion, cout, n, stride in self.cfg:
            for s in [stride] + [1] * (n - 1):
                layers.append(MobileBlock(cin, cout, expansion, s))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.conv2 = conv(320, 1280, 1)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(self.layers(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class TradesSmallCNN(nn.Module):
    def __init__(self, channels, classes, drop=0.5):
        super().__init__()
        activ = nn.ReLU(True)
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(channels, 32, 3)), ("relu1", activ),
            ("conv2", nn.Conv2d(32, 32, 3)), ("relu2", activ), ("maxpool1", nn.MaxPool2d(2, 2)),
            ("conv3", nn.Conv2d(32, 64, 3)), ("relu3", activ),
            ("conv4", nn.Conv2d(64, 64, 3)), ("relu4", activ), ("maxpool2", nn.MaxPool2d(2, 2))]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(64 * 4 * 4, 200)), ("relu1", activ), ("drop", nn.Dropout(drop)),
            ("fc2", nn.Linear(200, 200)), ("relu2", activ), ("fc3", nn.Linear(200, classes))]))

    def forward(self, x):
        return self.classifier(self.feature_extractor(x).view(-1, 64 * 4 * 4))


class CompactCNN(nn.Module):
    """ardkit's own `small_cnn` (compact variant), for the export round trip."""

    def __init__(self, channels, classes, c1=32, c2=64, hidden=128, batch_norm=False, size=28):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * (size // 4) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, classes)
        self.batch_norm = batch_norm
        if batch_norm:
            self.bn1 = nn.BatchNorm2d(c1)
            self.bn2 = nn.BatchNorm2d(c2)

    def forward(self, x):
        h = self.conv1(x)
        if self.batch_norm:
            h = self.bn1(h)
        h = F.max_pool2d(F.relu(h), 2)
        h = self.conv2(h)
        if self.batch_norm:
            h = self.bn2(h)
        h = F.max_pool2d(F.relu(h), 2)
        return self.fc2(F.relu(self.fc1(h.flatten(1))))


class LeNet5(nn.Module):
    def __init__(self, channels, classes, half=False, padding=0):
        super().__init__()
        c1, c2, c3, hidden = (3, 8, 60, 42) if half else (6, 16, 120, 84)
        self.features = c3
        self.conv1 = nn.Conv2d(channels, c1, 5, padding=padding)
        self.relu1 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.relu2 = nn.ReLU()
        self.maxpool2 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(c2, c3, 5)
        self.relu3 = nn.ReLU()
        self.fc1 = nn.Linear(c3, hidden)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        out = self.maxpool1(self.relu1(self.conv1(x)))
        out = self.maxpool2(self.relu2(self.conv2(out)))
        feature = self.relu3(self.conv3(out)).view(-1, self.features)
        return self.fc2(self.relu4(self.fc1(feature)))


# name -> (ardkit plugin, its parameters, (channels, height, width, classes), constructor)
CASES = {
    "resnet18": ("resnet", {"depth": 18}, (3, 32, 32, 10), lambda: ResNet([2, 2, 2, 2], 3, 10)),
    "resnet34": ("resnet", {"depth": 34}, (3, 32, 32, 100), lambda: ResNet([3, 4, 6, 3], 3, 100)),
    "preact_resnet18": ("preact_resnet18", {}, (3, 32, 32, 10), lambda: PreActResNet18(3, 10, False)),
    "preact_resnet18_bn": ("preact_resnet18", {"final_bn": True}, (3, 32, 32, 10),
                           lambda: PreActResNet18(3, 10, True)),
    "wide_resnet_16_2": ("wide_resnet", {"depth": 16, "widen_factor": 2}, (3, 32, 32, 10),
                         lambda: WideResNet(16, 2, 3, 10)),
    "wide_resnet_22_1_plain": ("wide_resnet", {"depth": 22, "widen_factor": 1, "sub_block1": False},
                               (3, 32, 32, 10), lambda: WideResNet(22, 1, 3, 10, sub_block1=False)),
    "mobilenet_v2": ("mobilenet_v2", {}, (3, 32, 32, 100), lambda: MobileNetV2(3, 100)),
    "small_cnn_trades": ("small_cnn", {"variant": "trades"}, (1, 28, 28, 10),
                         lambda: TradesSmallCNN(1, 10)),
    "small_cnn_compact_bn": ("small_cnn", {"batch_norm": True}, (1, 28, 28, 10),
                             lambda: CompactCNN(1, 10, batch_norm=True)),
    "lenet5": ("lenet5", {}, (1, 32, 32, 10), lambda: LeNet5(1, 10)),
    "lenet5_half_28": ("lenet5", {"half": True}, (1, 28, 28, 10), lambda: LeNet5(1, 10, True, 2)),
}
