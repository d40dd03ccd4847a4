"""Appearance-guided landmark matching: 68 landmarks on any character (FaceShot Sec. 3.2).

Importing this package does not import torch or diffusers; the diffusion feature extractor
loads them on first use.
"""

from faceshot_core.matching.base import FeatureExtractor, FeatureSpec, ImageEmbedder

__all__ = ["FeatureExtractor", "FeatureSpec", "ImageEmbedder"]
