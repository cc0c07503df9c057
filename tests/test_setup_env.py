"""The torchvision-on-CPU hook: its pure-PyTorch NMS against a brute-force reference."""


import torch

from ovnb import setup_env


def _hook_namespace():
    ns = {}
    exec(compile(setup_env.HOOK_SOURCE, "hook", "exec"), ns)
    import sys
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_Finder"]
    return ns


def _brute_force_nms(boxes, scores, thr):
    def iou(a, b):
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
        return inter / (area(a) + area(b) - inter)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def test_pure_nms_matches_brute_force():
    nms = _hook_namespace()["_nms"]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        xy = torch.rand(12, 2, generator=g) * 50
        wh = torch.rand(12, 2, generator=g) * 30 + 1
        boxes = torch.cat([xy, xy + wh], 1)
        scores = torch.rand(12, generator=g)
        for thr in (0.3, 0.5, 0.7):
            assert nms(boxes, scores, thr).tolist() == _brute_force_nms(boxes.tolist(), scores.tolist(), thr)
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_install_and_remove_write_only_into_the_target(tmp_path):
    pth = setup_env.install_hook(tmp_path)
    assert pth.read_text().strip() == f"import {setup_env.HOOK_MODULE}"
    assert (tmp_path / f"{setup_env.HOOK_MODULE}.py").is_file()
    setup_env.remove_hook(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_torchvision_imports_in_this_environment():
    ok, err = setup_env.torchvision_imports()
    assert ok, f"import torchvision fails here ({err}); run `python -m ovnb.setup_env`"
