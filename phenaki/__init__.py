"""Phenaki: text to video of any length, from a timeline of prompts (Villegas et al., ICLR 2023)."""

from .live import LiveStory
from .models.cvivit import CViViT
from .models.maskgit import MaskGit, SelfCritic, TokenCritic
from .pipeline import Phenaki, VideoChunk
from .sampling import SamplingSettings, StepState
from .scenes import make_video

__all__ = [
    "CViViT",
    "MaskGit",
    "TokenCritic",
    "SelfCritic",
    "Phenaki",
    "VideoChunk",
    "make_video",
    "SamplingSettings",
    "StepState",
    "LiveStory",
]
