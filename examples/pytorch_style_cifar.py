"""A PyTorch-style image classifier, run on minidl by its imports alone.

It follows the steps of PyTorch's CIFAR-10 tutorial "Training a classifier" (a small
conv/pool/fc ``Net``, ``CrossEntropyLoss``, SGD with momentum, the training loop with a running
loss, saving the state dict to ``./cifar_net.pth`` and loading it into a new ``Net``, overall
and per-class accuracy), written for this project. Instead of downloading CIFAR-10 it makes a
small synthetic set of 3x32x32 images in the ten CIFAR classes: each class has its own colour
and stripe pattern, drawn with noise, so the task is learnable in seconds.

The body below is plain PyTorch code. Only the import block differs: it runs on minidl by
default and on PyTorch with ``PYTORCH_STYLE_BACKEND=torch``:

    python examples/pytorch_style_cifar.py                          # minidl
    PYTORCH_STYLE_BACKEND=torch python examples/pytorch_style_cifar.py   # the same on PyTorch
"""

import argparse
import os

import numpy as np

if os.environ.get("PYTORCH_STYLE_BACKEND", "minidl") == "torch":
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.utils.data import DataLoader, Dataset
else:
    import minidl as torch
    import minidl.nn as nn
    import minidl.nn.functional as F
    import minidl.optim as optim
    from minidl.utils.data import DataLoader, Dataset

classes = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class SyntheticCIFAR(Dataset):
    """``size`` 3x32x32 images: class ``k`` is stripes of one colour at one angle and
    frequency, with random phase and pixel noise; normalised to [-1, 1] like the tutorial's
    ``Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))``. Samples are ``(image, label)`` pairs."""

    def __init__(self, size, seed):
        rng = np.random.default_rng(seed)
        style = np.random.default_rng(1234)  # the classes look the same in every split
        colours = style.uniform(0.2, 1.0, (len(classes), 3))
        angles = np.linspace(0, np.pi, len(classes), endpoint=False)
        frequencies = style.uniform(0.2, 0.6, len(classes))
        self.labels = rng.integers(0, len(classes), size)
        yy, xx = np.mgrid[0:32, 0:32]
        images = np.empty((size, 3, 32, 32), np.float32)
        for i, label in enumerate(self.labels):
            direction = xx * np.cos(angles[label]) + yy * np.sin(angles[label])
            stripes = 0.5 + 0.5 * np.sin(frequencies[label] * direction + rng.uniform(0, 6.3))
            image = colours[label][:, None, None] * stripes + rng.normal(0, 0.15, (3, 32, 32))
            images[i] = np.clip(image, 0, 1)
        self.images = torch.from_numpy((images - 0.5) / 0.5)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def main():
    parser = argparse.ArgumentParser(description="PyTorch-style classifier on synthetic CIFAR")
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=100)
    args = parser.parse_args()

    torch.manual_seed(0)
    batch_size = args.batch_size
    trainset = SyntheticCIFAR(args.train_size, seed=1)
    trainloader = DataLoader(trainset, batch_size=batch_size, shuffle=True,
                             num_workers=args.num_workers)
    testset = SyntheticCIFAR(args.test_size, seed=2)
    testloader = DataLoader(testset, batch_size=batch_size, shuffle=False,
                            num_workers=args.num_workers)

    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

    for epoch in range(args.epochs):
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            inputs, labels = data
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if i % args.log_every == args.log_every - 1:
                print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / args.log_every:.3f}")
                running_loss = 0.0

    print("Finished Training")

    PATH = "./cifar_net.pth"
    torch.save(net.state_dict(), PATH)

    dataiter = iter(testloader)
    images, labels = next(dataiter)
    print("GroundTruth: ", " ".join(f"{classes[labels[j]]:5s}" for j in range(batch_size)))

    net = Net()
    net.load_state_dict(torch.load(PATH, weights_only=True))

    outputs = net(images)
    _, predicted = torch.max(outputs, 1)
    print("Predicted: ", " ".join(f"{classes[predicted[j]]:5s}" for j in range(batch_size)))

    correct = 0
    total = 0
    with torch.no_grad():
        for data in testloader:
            images, labels = data
            outputs = net(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()

    print(f"Accuracy of the network on the {total} test images: {100 * correct // total} %")

    # per-class accuracy: labels and predictions compared one by one, as Python numbers
    correct_pred = {classname: 0 for classname in classes}
    total_pred = {classname: 0 for classname in classes}

    with torch.no_grad():
        for data in testloader:
            images, labels = data
            outputs = net(images)
            _, predictions = torch.max(outputs, 1)
            for label, prediction in zip(labels, predictions, strict=True):
                if label == prediction:
                    correct_pred[classes[label]] += 1
                total_pred[classes[label]] += 1

    for classname, correct_count in correct_pred.items():
        accuracy = 100 * float(correct_count) / max(total_pred[classname], 1)
        print(f"Accuracy for class: {classname:5s} is {accuracy:.1f} %")

    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    print(device)


if __name__ == "__main__":
    main()
