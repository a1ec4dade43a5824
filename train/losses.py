"""BCE + soft Dice on each output channel (nucleus body, nucleus boundary, and the centre map
where the network has it: its targets are soft, 0-1, which BCE and soft Dice both take).

BCE gives well-calibrated per-pixel probabilities (thresholds mean something); Dice keeps
the thin, rare boundary channel from collapsing to all-background. With ``--gap-weight`` the
targets carry per-pixel BCE weights (not normalised: such a run's losses are not comparable
with an unweighted run's).
"""
from __future__ import annotations

import keras
from keras import ops


def soft_dice(y_true, y_pred, smooth: float = 1.0):
    axes = (0, 1, 2)  # over the batch and pixels, one value per channel
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * intersection + smooth) / (total + smooth)


@keras.saving.register_keras_serializable(package="nuclei")
def bce_dice_loss(y_true, y_pred):
    """``y_true``: one channel per output, and optionally after them a channel of per-pixel
    BCE weights (``train.data.contact_weights``; Dice stays unweighted)."""
    outputs = y_pred.shape[-1]
    truth = y_true[..., :outputs]
    bce = keras.losses.binary_crossentropy(truth[..., None], y_pred[..., None])
    if y_true.shape[-1] > outputs:
        bce = bce * y_true[..., outputs:outputs + 1]
    return ops.mean(bce) + ops.mean(1.0 - soft_dice(truth, y_pred))


@keras.saving.register_keras_serializable(package="nuclei")
def body_dice(y_true, y_pred):
    """Dice of the thresholded body channel, shown in the progress bar."""
    hard = ops.cast(y_pred[..., :1] > 0.5, "float32")
    return soft_dice(y_true[..., :1], hard, smooth=1e-6)[0]
