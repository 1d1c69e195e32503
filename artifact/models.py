"""Models: torchvision ResNet-18/50 (ImageNet V1 weights from the hub cache) and a small CPU CNN.

Every model takes uint8-derived pixels in [0, 1] and normalises inside, so attacks and triggers live in
pixel space (docs/deviations.md, GM).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from artifact.errors import UserError

# The V1 files that `pretrained=True` gave the group_DRO / JTT / GEORGE era code.
WEIGHT_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth"}


class Normalized(nn.Module):
    """Normalise [0,1] pixels with the dataset's mean/std, then run the network."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)

    def features(self, x):
        """Penultimate (avgpool) features, for GEORGE and EPIC."""
        return self.net.features((x - self.mean) / self.std)

    @property
    def head(self) -> nn.Linear:
        return self.net.fc


class SmallCNN(nn.Module):
    """4 x [conv3x3-BN-ReLU], widths w-2w-4w-8w, max-pool after the first three, GAP, linear."""

    def __init__(self, width: int = 16, n_classes: int = 2):
        super().__init__()
        layers, c_in = [], 3
        for i, c in enumerate([width, 2 * width, 4 * width, 8 * width]):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c_in, n_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.fc(self.body(x))


class _ResNet(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.backbone = net
        self.fc = net.fc
        net.fc = nn.Identity()

    def features(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.fc(self.backbone(x))


def weight_path(arch: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_FILES[arch]


def missing_weights(archs) -> dict[str, Path]:
    """arch -> where its ImageNet weights should be, for each of `archs` whose file is not there."""
    return {a: weight_path(a) for a in sorted(archs) if a in WEIGHT_FILES and not weight_path(a).is_file()}


def sha256_prefix(name: str) -> str:
    """The start of the file's sha256 that torchvision puts in its weight file names: `<arch>-<sha256[:8]>.pth`."""
    return name.rsplit("-", 1)[-1].split(".")[0]


def sha256_matches(path: Path, name: str | None = None) -> bool:
    """Whether `path`'s sha256 starts with the hex part of its name."""
    prefix = sha256_prefix(name or path.name)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest().startswith(prefix)


def check_weights(arch: str) -> Path:
    """The pretrained weights file of `arch`, present and intact (its sha256 is in its name); else a
    UserError saying where to get it. Checked before a run starts, and again when a model loads it."""
    path, name = weight_path(arch), WEIGHT_FILES[arch]
    url = f"https://download.pytorch.org/models/{name}"
    if not path.is_file():
        if os.environ.get("OILWATER_IN_IMAGE") == "1":  # an image built with OILWATER_WEIGHTS=skip
            how = (f"this image was built without them (OILWATER_WEIGHTS=skip): mount a folder holding {name} "
                   f"there (docker run -v /path/to/checkpoints:{path.parent}:ro ...) or rebuild the image "
                   "without --build-arg OILWATER_WEIGHTS=skip")
        else:
            how = f"download {url} there (the Docker image has them)"
        raise UserError(f"pretrained {arch} weights not found at {path}; {how}, or set model.pretrained: false / "
                        "use --preset tiny (--preset preflight: or --allow-random-init)")
    if not sha256_matches(path):
        raise UserError(f"pretrained {arch} weights at {path} are corrupt (their sha256 does not start with "
                        f"{sha256_prefix(name)}, as the file name says); delete the file and "
                        f"download {url} again")
    return path


def _resnet(arch: str, pretrained: bool, n_classes: int) -> nn.Module:
    import torchvision

    from artifact.store import DamagedFile, torch_load

    net = getattr(torchvision.models, arch)(weights=None)
    if pretrained:
        path = check_weights(arch)
        try:
            net.load_state_dict(torch_load(path))
        except DamagedFile as e:
            raise UserError(f"pretrained {arch} weights {e}; delete the file and download "
                            f"https://download.pytorch.org/models/{WEIGHT_FILES[arch]} again") from None
    net.fc = nn.Linear(net.fc.in_features, n_classes)
    return _ResNet(net)


def build_model(cfg, mean, std, n_classes: int = 2) -> Normalized:
    if cfg.arch == "smallcnn":
        net = SmallCNN(cfg.width, n_classes)
    elif cfg.arch in WEIGHT_FILES:
        net = _resnet(cfg.arch, cfg.pretrained, n_classes)
    else:
        raise UserError(f"model.arch: unknown architecture {cfg.arch!r} (valid: smallcnn, resnet18, resnet50)")
    return Normalized(net, mean, std)
