"""Stand-ins shared by tests: small and fast, with the interface of the real thing."""

import torch


class MeanAbs(torch.nn.Module):
    """A stand-in perceptual network: mean absolute difference (keeps the tests fast)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, a, b, normalize=True):
        return ((a - b).abs().mean(dim=(1, 2, 3)) * self.w).view(-1, 1, 1, 1)
