"""The LAION aesthetic head (imported only when the ``aesthetic`` reward loads: it imports torch)."""

from __future__ import annotations

import torch
from torch import nn


class LaionAestheticMLP(nn.Module):
    """The MLP of LAION's improved aesthetic predictor (``sac+logos+ava1-l14-linearMSE.pth``).

    Five linear layers 768-1024-128-64-16-1 with no activation between them, dropout (0.2, 0.2, 0.1)
    after the first three; the state-dict keys are ``layers.{0,2,4,6,7}.{weight,bias}``, as in the
    published file. Input: the L2-normalised CLIP ViT-L/14 image embedding. Output: a score on the
    ~1-10 scale of the AVA / SAC / LAION-logos ratings it was trained on.

    Args:
        in_features (`int`, *optional*, defaults to `768`): width of the CLIP image embedding.
    """

    def __init__(self, in_features: int = 768) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """Scores ``(N,)`` of L2-normalised embeddings ``(N, in_features)``."""
        return self.layers(embedding).squeeze(-1)
