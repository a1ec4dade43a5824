"""The U-Net: a contracting path, an expanding path with transposed convolutions, skips.

Kept in one short file so the whole network can be read at once. The input size is left
open (None x None) so the same model predicts on whole images of any size that is a
multiple of 2**depth; training uses fixed crops.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class UNetConfig:
    base_filters: int = 16      # filters of the first level; doubled at each level down
    depth: int = 4              # number of 2x down-samplings (input must be a multiple of 2**depth)
    in_channels: int = 3
    out_channels: int = 2       # nucleus body, nucleus boundary (3: and the centre map)
    dropout: float = 0.1        # at the bottleneck only: cheap regularisation for a small data set


def conv_block(x, filters: int, name: str):
    # Two 3x3 convolutions as in Ronneberger et al.; batch norm lets a small model converge
    # in the few epochs a CPU budget allows.
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(config: UNetConfig = UNetConfig()) -> keras.Model:
    inputs = keras.Input(shape=(None, None, config.in_channels), name="image")
    skips = []
    x = inputs
    for level in range(config.depth):  # contracting path
        x = conv_block(x, config.base_filters * 2**level, name=f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = conv_block(x, config.base_filters * 2**config.depth, name="bottleneck")
    if config.dropout:
        x = layers.Dropout(config.dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(config.depth)):  # expanding path
        filters = config.base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level}_transpose")(x)
        x = layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        x = conv_block(x, filters, name=f"up{level}")
    outputs = layers.Conv2D(config.out_channels, 1, activation="sigmoid", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="nuclei_unet")
