import numpy as np
import pytest

from nuclei_app.metrics import (DSB_THRESHOLDS, image_scores, iou_matrix, match_at_thresholds, mean_scores,
                                objects_holding_several, pixel_scores)

from .conftest import disk

SHAPE = (100, 100)


def square(top, left, size, shape=SHAPE):
    mask = np.zeros(shape, bool)
    mask[top:top + size, left:left + size] = True
    return mask


def test_thresholds_are_the_dsb_ones():
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_pixel_scores_known_overlap():
    truth, prediction = square(0, 0, 10), square(0, 5, 10)  # 50 shared of 150 in union
    accuracy, iou, dice = pixel_scores(truth, prediction)
    assert iou == pytest.approx(50 / 150)
    assert dice == pytest.approx(2 * 50 / 200)
    assert accuracy == pytest.approx(1 - 100 / 10_000)


def test_empty_images_score_perfectly():
    empty = np.zeros(SHAPE, np.int32)
    scores = image_scores(empty, empty)
    assert scores.mean_ap == 1.0 and scores.iou == 1.0 and scores.dice == 1.0


def test_iou_matrix_of_shifted_squares():
    truth = square(0, 0, 10).astype(np.int32)
    prediction = np.zeros(SHAPE, np.int32)
    prediction[square(0, 2, 10)] = 7  # arbitrary id: 80 shared / 120 union
    assert iou_matrix(truth, prediction) == pytest.approx(np.array([[80 / 120]]))


@pytest.mark.parametrize("ids", [(5, 9, 2), (900_000_000, 3, 77), (-4, 1, 2)], ids=["gaps", "huge", "negative"])
def test_any_object_ids_give_the_same_table_as_sequential_ones(ids):
    sequential = np.zeros(SHAPE, np.int32)
    for index, top in enumerate((0, 30, 60), start=1):
        sequential[square(top, top, 20)] = index
    prediction = np.zeros(SHAPE, np.int32)
    prediction[square(2, 0, 20)], prediction[square(30, 35, 20)] = 1, 2
    renamed = np.zeros(SHAPE, np.int64)
    for index, new_id in enumerate(ids, start=1):
        renamed[sequential == index] = new_id
    order = np.argsort(ids)    # the table's rows follow the ids' order
    assert iou_matrix(renamed, prediction) == pytest.approx(iou_matrix(sequential, prediction)[order])
    assert image_scores(renamed, prediction) == image_scores(sequential, prediction)


def test_mean_ap_counts_thresholds_below_the_iou():
    # IoU 0.6667: a true positive at 0.50, 0.55, 0.60, 0.65 and a FP + FN above.
    truth = square(0, 0, 10).astype(np.int32)
    prediction = square(0, 2, 10).astype(np.int32)
    matches = match_at_thresholds(truth, prediction)
    assert [m.true_positives for m in matches] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert matches[-1].false_positives == 1 and matches[-1].false_negatives == 1
    assert image_scores(truth, prediction).mean_ap == pytest.approx(0.4)


def test_false_positive_and_missed_nucleus():
    truth = np.zeros(SHAPE, np.int32)
    truth[disk(SHAPE, (20, 20), 8)] = 1
    truth[disk(SHAPE, (70, 70), 8)] = 2
    prediction = np.zeros(SHAPE, np.int32)
    prediction[disk(SHAPE, (20, 20), 8)] = 1   # exact
    prediction[disk(SHAPE, (20, 70), 6)] = 2   # nothing there: a false positive
    scores = image_scores(truth, prediction)
    # At every threshold: TP 1, FP 1, FN 1 -> 1/3.
    assert scores.mean_ap == pytest.approx(1 / 3)
    assert scores.ap50 == pytest.approx(1 / 3)
    assert (scores.n_true, scores.n_predicted) == (2, 2)


def test_merged_prediction_matches_at_most_one():
    truth = np.zeros(SHAPE, np.int32)
    truth[square(10, 10, 10)] = 1
    truth[square(10, 20, 10)] = 2
    prediction = (truth > 0).astype(np.int32)  # both merged into one: IoU 0.5 with each
    assert image_scores(truth, prediction).ap50 == 0.0  # 0.5 is not *above* 0.5


def test_true_objects_holding_several_found_ones_are_counted():
    truth = np.zeros(SHAPE, np.int32)
    truth[square(10, 10, 10) | square(10, 20, 10)] = 1      # two touching nuclei made one by a binary mask
    truth[square(50, 50, 10)] = 2
    prediction = np.zeros(SHAPE, np.int32)
    prediction[square(10, 10, 10)], prediction[square(10, 20, 10)], prediction[square(50, 50, 10)] = 1, 2, 3
    assert objects_holding_several(truth, prediction) == 1
    assert objects_holding_several(prediction, prediction) == 0
    assert objects_holding_several(truth, np.zeros(SHAPE, np.int32)) == 0
    assert objects_holding_several(np.zeros(SHAPE, np.int32), prediction) == 0
    straddling = np.zeros(SHAPE, np.int32)
    straddling[square(50, 45, 10)], straddling[square(50, 55, 10)] = 1, 2   # each half in object 2: not "most"
    assert objects_holding_several(truth, straddling) == 0


def test_mean_scores_average_images():
    truth = square(0, 0, 10).astype(np.int32)
    perfect = image_scores(truth, truth)
    half = image_scores(truth, square(0, 2, 10).astype(np.int32))
    summary = mean_scores([perfect, half])
    assert summary["mean_ap"] == pytest.approx(0.7) and summary["images"] == 2


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        image_scores(np.zeros((5, 5), np.int32), np.zeros((5, 6), np.int32))
