import numpy as np

from nuclei_app.quiet import import_keras

keras = import_keras()

from train.losses import bce_dice_loss  # noqa: E402 - after Keras is imported quietly


def loss(truth: np.ndarray, prediction: np.ndarray) -> float:
    return float(keras.ops.convert_to_numpy(bce_dice_loss(keras.ops.convert_to_tensor(truth),
                                                          keras.ops.convert_to_tensor(prediction))))


def test_weights_of_one_are_the_plain_loss_and_larger_weights_count_more():
    rng = np.random.default_rng(0)
    truth = (rng.random((2, 16, 16, 2)) > 0.5).astype(np.float32)
    prediction = rng.uniform(0.05, 0.95, (2, 16, 16, 2)).astype(np.float32)
    ones = np.ones((2, 16, 16, 1), np.float32)
    plain = loss(truth, prediction)
    assert np.isclose(loss(np.concatenate([truth, ones], -1), prediction), plain, rtol=1e-6)
    heavier = ones.copy()
    heavier[:, 4:8] = 6.0
    assert loss(np.concatenate([truth, heavier], -1), prediction) > plain
    # Where the prediction is right, extra weight changes nothing: the weight scales each pixel's error.
    right = np.where(truth > 0, 0.999, 0.001).astype(np.float32)
    assert np.isclose(loss(np.concatenate([truth, heavier], -1), right), loss(truth, right), atol=1e-2)
