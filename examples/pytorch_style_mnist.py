"""A PyTorch-style training script for handwritten digits, run on minidl by its imports alone.

It follows the layout of PyTorch's MNIST example (a ``Net`` with conv1/conv2/dropout/fc1/fc2
and ``log_softmax``, ``train(args, model, device, train_loader, optimizer, epoch)``,
``test(model, device, test_loader)``, Adadelta with StepLR, ``torch.save`` of the state dict),
written for this project. The data are scikit-learn's 8x8 digits, upscaled to MNIST's 28x28 by
bilinear interpolation (nothing is downloaded).

The body below is plain PyTorch code. Only the import block differs: it runs on minidl by
default and on PyTorch with ``PYTORCH_STYLE_BACKEND=torch``:

    python examples/pytorch_style_mnist.py                          # minidl
    PYTORCH_STYLE_BACKEND=torch python examples/pytorch_style_mnist.py   # the same on PyTorch
"""

import argparse
import os

import numpy as np
from sklearn.datasets import load_digits

if os.environ.get("PYTORCH_STYLE_BACKEND", "minidl") == "torch":
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.optim.lr_scheduler import StepLR
    from torch.utils.data import DataLoader, TensorDataset, random_split
else:
    import minidl as torch
    import minidl.nn as nn
    import minidl.nn.functional as F
    import minidl.optim as optim
    from minidl.optim.lr_scheduler import StepLR
    from minidl.utils.data import DataLoader, TensorDataset, random_split


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def digits_28x28():
    """The 1797 digits as an (N, 1, 28, 28) float tensor scaled like MNIST's normalised
    images, and their int64 labels."""
    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    images = (images - images.mean()) / images.std()
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return TensorDataset(images, labels)


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)} "
                  f"({100.0 * batch_idx / len(train_loader):.0f}%)]\tLoss: {loss.item():.6f}")
            if args.dry_run:
                break


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    accuracy = correct / len(test_loader.dataset)
    print(f"\nTest set: Average loss: {test_loss:.4f}, Accuracy: {correct}/"
          f"{len(test_loader.dataset)} ({100.0 * accuracy:.0f}%)\n")
    return accuracy


def main():
    parser = argparse.ArgumentParser(description="PyTorch-style digits example")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N")
    parser.add_argument("--test-batch-size", type=int, default=500, metavar="N")
    parser.add_argument("--epochs", type=int, default=2, metavar="N")
    parser.add_argument("--lr", type=float, default=1.0, metavar="LR")
    parser.add_argument("--gamma", type=float, default=0.7, metavar="M")
    parser.add_argument("--train-size", type=int, default=None, metavar="N",
                        help="use only the first N training images (for quick runs)")
    parser.add_argument("--dry-run", action="store_true", help="one batch per epoch")
    parser.add_argument("--seed", type=int, default=1, metavar="S")
    parser.add_argument("--log-interval", type=int, default=10, metavar="N")
    parser.add_argument("--save-model", default=None, metavar="PATH",
                        help="save the trained weights there (e.g. digits_cnn.pt)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    dataset = digits_28x28()
    split = torch.Generator().manual_seed(0)
    train_set, test_set = random_split(dataset, [0.8, 0.2], generator=split)
    if args.train_size is not None:
        train_set.indices = train_set.indices[: args.train_size]
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=args.test_batch_size)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        accuracy = test(model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), args.save_model)
        restored = Net().to(device)
        restored.load_state_dict(torch.load(args.save_model, weights_only=True))
        print(f"Saved the weights to {args.save_model} and loaded them into a new Net")
    print(f"final test accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
