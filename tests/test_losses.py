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
    # The weighted loss, computed by hand: mean of weight x per-pixel BCE, plus 1 - Dice per channel.
    bce = -(truth * np.log(prediction) + (1 - truth) * np.log(1 - prediction))
    intersection = (truth * prediction).sum(axis=(0, 1, 2))
    dice = (2 * intersection + 1) / (truth.sum(axis=(0, 1, 2)) + prediction.sum(axis=(0, 1, 2)) + 1)
    expected = (heavier * bce).mean() + (1 - dice).mean()
    assert np.isclose(loss(np.concatenate([truth, heavier], -1), prediction), expected, rtol=1e-4)


def test_a_third_output_is_scored_and_the_weights_follow_the_outputs():
    """With the centre map as a third output, channel 2 of the targets is that map's (soft)
    truth and a fourth channel the weights: the loss counts the third output's error."""
    rng = np.random.default_rng(1)
    truth = np.concatenate([(rng.random((2, 16, 16, 2)) > 0.5), rng.random((2, 16, 16, 1))], -1).astype(np.float32)
    prediction = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0.05, 0.95).astype(np.float32)
    plain = loss(truth, prediction)
    assert np.isclose(loss(np.concatenate([truth, np.ones((2, 16, 16, 1), np.float32)], -1), prediction), plain,
                      rtol=1e-6)
    worse_centre = prediction.copy()
    worse_centre[..., 2] = 1.0 - worse_centre[..., 2]
    assert loss(truth, worse_centre) > plain + 0.1
