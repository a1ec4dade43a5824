"""Nuclei: U-Net segmentation of cell nuclei in microscopy images."""

__version__ = "0.1.0"
