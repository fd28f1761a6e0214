"""Synthetic files in the exact layouts ``chexnet import`` reads, built from the source projects' own networks.

arnoweng/CheXNet: torchvision's densenet121 with a ``Sequential(Linear(1024, 14), Sigmoid())`` head, saved as
arnoweng's ``model.pth.tar`` is: ``{"epoch", "arch", "state_dict", "best_loss", "optimizer"}`` with
DataParallel's ``module.`` and the wrapper's ``densenet121.`` prefixes, the pre-0.3 ``norm.1`` layer names and no
``num_batches_tracked`` (torch 0.3), in torch's legacy (non-zip) format. torchxrayvision: its own
``xrv.models.DenseNet`` (1 input channel, 18 outputs) and its ``state_dict()``. Weights are random, BatchNorm
statistics included, and the heads small so that sigmoids stay away from 0 and 1.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch
import torchvision
import torchxrayvision as xrv
from torch import nn

_MODERN_LAYER = re.compile(r"(denselayer\d+\.(?:norm|conv))([12])\.")


def randomise(net: nn.Module, seed: int) -> nn.Module:
    """Random BatchNorm affine and running statistics, a small random head; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.02)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.5)
    return net.eval()


def arnoweng_network(seed: int = 0) -> nn.Module:
    """torchvision's densenet121 with arnoweng's head; its output is the 14 probabilities."""
    torch.manual_seed(seed)
    net = torchvision.models.densenet121(weights=None)
    net.classifier = nn.Sequential(nn.Linear(1024, 14), nn.Sigmoid())
    return randomise(net, seed)


def arnoweng_state(net: nn.Module, *, num_batches_tracked: bool = False) -> OrderedDict[str, torch.Tensor]:
    """``net``'s weights keyed as arnoweng's file keys them."""
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked") and not num_batches_tracked:
            continue
        state["module.densenet121." + _MODERN_LAYER.sub(r"\1.\2.", key)] = value
    return state


def write_arnoweng_file(path: Path, net: nn.Module, *, cuda_storages: bool = False) -> Path:
    """arnoweng's ``model.pth.tar`` layout; ``cuda_storages`` marks every tensor as saved from ``cuda:0``."""
    state = arnoweng_state(net)
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": list(range(3))}]}
    payload = {"epoch": 7, "arch": "densenet121", "state_dict": state, "best_loss": 0.152, "optimizer": optimizer}
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    if cuda_storages:  # as the GPU-trained original: storage classes torch.cuda.*, location 'cuda:0'
        data = path.read_bytes()
        data = data.replace(b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n")
        data = data.replace(b"ctorch\nLongStorage\n", b"ctorch.cuda\nLongStorage\n")
        data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
        path.write_bytes(data)
    return path


def xrv_network(seed: int = 0) -> nn.Module:
    """torchxrayvision's DenseNet (1 channel in, 18 out) returning sigmoids, no operating-point rescaling."""
    torch.manual_seed(seed)
    net = randomise(xrv.models.DenseNet(num_classes=18, in_channels=1, apply_sigmoid=True), seed)
    with torch.no_grad():
        net.features.conv0.weight /= 1024  # as training on inputs in [-1024, 1024] makes it: no saturated outputs
    return net
