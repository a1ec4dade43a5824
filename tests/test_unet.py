import keras
import numpy as np

from train.unet import UNetConfig, build_unet


def test_unet_keeps_any_multiple_of_its_depth():
    model = build_unet(UNetConfig(base_filters=4, depth=3))
    for height, width in ((32, 32), (48, 64), (16, 136)):
        output = model(np.zeros((1, height, width, 3), np.float32), training=False)
        assert tuple(output.shape) == (1, height, width, 2)
        assert 0.0 <= float(np.min(output)) and float(np.max(output)) <= 1.0


def test_unet_has_contracting_and_transposed_expanding_paths():
    model = build_unet(UNetConfig(base_filters=4, depth=3))
    kinds = [type(layer) for layer in model.layers]
    assert kinds.count(keras.layers.MaxPooling2D) == 3
    assert kinds.count(keras.layers.Conv2DTranspose) == 3
    assert kinds.count(keras.layers.Concatenate) == 3  # skip connections
