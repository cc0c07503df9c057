"""Panoptic quality against torchmetrics' reference implementation and hand-made cases; toy instances."""

import pytest
import torch

from ovnb.data.toy_world import ToyWorld, vocabulary
from ovnb.panoptic import PanopticQuality, targets_from_instances, training_targets

THING = [True, True, True, False, False]


def _scene(g):
    """Random panoptic ground truth on 24x24: two stuff bands, up to four thing boxes, a void square."""
    cat = torch.full((24, 24), 3, dtype=torch.long)
    cat[:int(torch.randint(4, 12, (), generator=g))] = 4
    inst = torch.zeros((24, 24), dtype=torch.long)
    for i in range(int(torch.randint(1, 5, (), generator=g))):
        c = int(torch.randint(0, 3, (), generator=g))
        y, x = torch.randint(0, 18, (2,), generator=g).tolist()
        h, w = torch.randint(3, 9, (2,), generator=g).tolist()
        cat[y:y + h, x:x + w] = c
        inst[y:y + h, x:x + w] = i + 1
    y, x = torch.randint(0, 20, (2,), generator=g).tolist()
    cat[y:y + 4, x:x + 4] = 255
    inst[y:y + 4, x:x + 4] = 0
    return cat, inst


def test_pq_equals_torchmetrics_on_random_scenes():
    tm = pytest.importorskip("torchmetrics.detection")
    g = torch.Generator().manual_seed(0)
    ours = PanopticQuality(5, THING)
    ref = tm.PanopticQuality(things={0, 1, 2}, stuffs={3, 4}, allow_unknown_preds_category=True,
                             return_per_class=True)
    ref_all = tm.PanopticQuality(things={0, 1, 2}, stuffs={3, 4}, allow_unknown_preds_category=True,
                                 return_sq_and_rq=True)
    for _ in range(40):
        gc, gi = _scene(g)
        pc = torch.roll(gc, shifts=int(torch.randint(-2, 3, (), generator=g)), dims=1)
        if torch.rand((), generator=g) < 0.5:
            pc[pc == 0] = 1  # a class confusion
        pc[pc == 255] = 3
        pi = gi.clone()
        pi[(pc < 3) & (pi == 0)] = 7
        pi[pc >= 3] = 0
        gs, ginf = targets_from_instances(gc, gi, THING)
        ps, pinf = targets_from_instances(pc, pi, THING)
        ours.update(ps, pinf, gs, ginf)
        target = torch.stack([torch.where(gc == 255, torch.tensor(9), gc), gi], -1)[None]  # 9: void for torchmetrics
        ref.update(torch.stack([pc, pi], -1)[None], target)
        ref_all.update(torch.stack([pc, pi], -1)[None], target)
    assert torch.allclose(ours.per_class()["pq"], ref.compute()[0].double(), atol=1e-6)
    s = ours.summary()
    pq, sq, rq = ref_all.compute().tolist()
    assert (s["pq"], s["sq"], s["rq"]) == pytest.approx((pq, sq, rq), abs=1e-6)


def test_pq_hand_case_void_and_matching():
    """GT: one thing (8 px) and void (4 px). Prediction: the thing with 6 of its px + 2 void px (IoU counts
    no void: 6 / (8 + 8 - 6 - 2) = 0.75), and a second segment lying on void (not a false positive)."""
    pred = torch.zeros(4, 4, dtype=torch.long)
    pred[0] = 1
    pred[1, :2] = 1
    pred[2, :2] = 1  # 2 px on void (row 2 is void in GT)
    pred[3, :3] = 2  # mostly on void
    gt = torch.zeros(4, 4, dtype=torch.long)  # 0 = void
    gt[:2] = 1  # segment 1: 8 px of class 0
    pq = PanopticQuality(2, [True, False]).update(pred, [{"id": 1, "category_id": 0}, {"id": 2, "category_id": 1}],
                                                  gt, [{"id": 1, "category_id": 0}])
    assert int(pq.tp[0]) == 1 and int(pq.fp.sum()) == 0 and int(pq.fn.sum()) == 0
    assert pq.summary()["pq"] == pytest.approx(0.75)


def test_pq_crowd_regions_are_never_matched_and_excuse_their_own_class_only():
    """GT: a crowd region of class 0 (rows 0-1) and one instance of class 0 (row 2). Prediction: a class-0
    segment on 6 px of the crowd (IoU 0.75 with it, but crowds are never matched; more than half of it on
    its class's crowd: no false positive), a class-1 segment on the crowd's other 2 px (another class's
    crowd excuses nothing: a false positive) and the instance exactly."""
    gt = torch.zeros(4, 4, dtype=torch.long)
    gt[:2] = 1  # crowd
    gt[2] = 2  # instance
    pred = torch.zeros(4, 4, dtype=torch.long)
    pred[0] = 1
    pred[1, :2] = 1
    pred[1, 2:] = 2
    pred[2] = 3
    gt_info = [{"id": 1, "category_id": 0, "iscrowd": 1}, {"id": 2, "category_id": 0, "iscrowd": 0}]
    pred_info = [{"id": 1, "category_id": 0}, {"id": 2, "category_id": 1}, {"id": 3, "category_id": 0}]
    pq = PanopticQuality(2, [True, True]).update(pred, pred_info, gt, gt_info)
    assert pq.tp.tolist() == [1, 0] and pq.fp.tolist() == [0, 1] and pq.fn.tolist() == [0, 0]
    assert float(pq.iou[0]) == pytest.approx(1.0)


def test_training_targets_keep_instances_apart_and_drop_unseen():
    mask = torch.tensor([[0, 0, 3, 3], [0, 0, 3, 3], [1, 1, 0, 0], [255, 1, 0, 0]])
    inst = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [3, 3, 2, 2], [0, 3, 2, 2]])
    class_map = torch.full((256,), 255, dtype=torch.long)
    class_map[0], class_map[3] = 0, 1  # class 1 is unseen
    masks, labels = training_targets(mask, inst, [True, True, True, False], class_map)
    assert sorted(labels.tolist()) == [0, 0, 1]  # two instances of class 0 stay two
    assert sorted(int(m.sum()) for m in masks) == [4, 4, 4]


def test_toy_world_instances_are_things_and_separate():
    voc = vocabulary()
    found_pair = False
    world = ToyWorld("train", 200, seed=3)
    for i in range(200):
        s = world[i]
        thing_px = torch.tensor([voc.is_thing(int(c)) for c in range(256) if c < len(voc.names)] +
                                [False] * (256 - len(voc.names)))[s["mask"]]
        assert torch.equal(s["instances"] > 0, thing_px)
        for c in s["mask"].unique().tolist():
            if voc.is_thing(c) and len(s["instances"][s["mask"] == c].unique()) > 1:
                found_pair = True
    assert found_pair  # some scene holds two objects of one class, kept as two instances


def test_mask_ap_perfect_wrong_class_and_ranking():
    from ovnb.instance_ap import MaskAP

    gt = torch.zeros(2, 16, 16, dtype=torch.bool)
    gt[0, :8, :8] = True
    gt[1, 8:, 8:] = True
    perfect = MaskAP([0, 1]).update(gt, [0, 1], gt, [0, 1], [0.9, 0.8])
    assert perfect.summary()["ap"] == pytest.approx(1.0)
    swapped = MaskAP([0, 1]).update(gt, [0, 1], gt, [1, 0], [0.9, 0.8])
    assert swapped.summary()["ap"] == pytest.approx(0.0)
    # a confident false positive ranked above the true positive of class 0: precision 1/2 at recall 1
    fp = torch.zeros(1, 16, 16, dtype=torch.bool)
    fp[0, :8, 8:] = True
    ranked = MaskAP([0]).update(gt[:1], [0], torch.cat([fp, gt[:1]]), [0, 0], [0.95, 0.5])
    assert ranked.summary()["ap50"] == pytest.approx(0.5, abs=0.01)


def test_mask_ap_ignores_detections_on_crowd_regions():
    """A higher-scored detection on a crowd region: a false positive when the crowd is not given (AP < 1),
    ignored when it is flagged (AP 1, COCOeval's rule)."""
    from ovnb.instance_ap import MaskAP

    gt = torch.zeros(2, 8, 8, dtype=torch.bool)
    gt[0, :4, :4] = True  # an instance
    gt[1, 4:, 4:] = True  # a crowd region of the same class
    pred = gt.clone()
    scores = [0.5, 0.9]
    plain = MaskAP([0]).update(gt[:1], [0], pred, [0, 0], scores).summary()["ap"]
    crowd = MaskAP([0]).update(gt, [0, 0], pred, [0, 0], scores, gt_crowd=[False, True]).summary()["ap"]
    assert crowd == pytest.approx(1.0) and plain < 0.9
