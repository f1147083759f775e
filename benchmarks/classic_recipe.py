"""The classic tutorial recipe, as a whole process, for side-by-side timing against `python -m resnet_core train`.

An ImageFolder read through PIL and torchvision transforms (resize, to tensor, normalise; no augmentation),
a DataLoader with 2 workers, an NCHW fp32 ResNet, SGD with a constant learning rate of 0.1, momentum 0.9 and
weight decay 5e-4. Prints one JSON line: test_acc, epochs, seconds (training and testing, not imports).

    .venv/bin/python -m benchmarks.classic_recipe DATA_DIR [--model resnet20] [--epochs 2] [--side 32]

DATA_DIR holds train/ and test/ class folders.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from resnet_core import build_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    tf = T.Compose([T.Grayscale(), T.Resize(args.side), T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    train = ImageFolder(f"{args.data_dir}/train", tf)
    test = ImageFolder(f"{args.data_dir}/test", tf)
    train_loader = DataLoader(train, batch_size=128, shuffle=True, num_workers=args.workers)
    test_loader = DataLoader(test, batch_size=256, num_workers=args.workers)
    model = build_model(args.model, in_channels=1, num_classes=len(train.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for _ in range(args.epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += int((model(x).argmax(1) == y).sum())
    print(json.dumps(dict(test_acc=correct / len(test), epochs=args.epochs, seconds=time.perf_counter() - start)))


if __name__ == "__main__":
    main()
