"""The shared training loop: schedules in closed form, exact resume, atomic checkpoints."""

import math

import pytest
import torch
from torch import nn

from ovnb import train
from ovnb.methods.fusioner import FusionerConfig, FusionHead, bce_loss


def test_warmup_then_cosine_values():
    assert train.cosine_value(0, 100, 1.0, 0.0, warmup=10) == 0.0
    assert train.cosine_value(5, 100, 1.0, 0.0, warmup=10) == pytest.approx(0.5)
    assert train.cosine_value(10, 100, 1.0, 0.0, warmup=10) == pytest.approx(1.0)
    assert train.cosine_value(55, 100, 1.0, 0.0, warmup=10) == pytest.approx(0.5)
    assert train.cosine_value(100, 100, 1.0, 0.1, warmup=10) == pytest.approx(0.1)
    # increasing weight decay (official Fusioner: 0.01 -> 0.4)
    assert train.cosine_value(50, 100, 0.01, 0.4) == pytest.approx((0.01 + 0.4) / 2)


def _head():
    torch.manual_seed(0)
    return FusionHead(16, 16, FusionerConfig(width=16, layers=2, heads=2, decoder_width=8, decoder_convs=2))


def _loss_fn(head, seed=0):
    def loss_fn(step, micro):
        g = train.step_generator(seed, step, micro)
        tokens = torch.randn(3, 16, 16, generator=g)
        text = torch.randn(3, 1, 16, generator=g)
        target = (torch.rand(3, 1, 8, 8, generator=g) > 0.5).long()
        target[:, :, 0, 0] = 255
        # dropout-like use of the global generator: resume must restore it too
        noise = torch.rand(()) * 1e-3
        return bce_loss(head(tokens, (4, 4), text, (8, 8)), target) + noise
    return loss_fn


def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_interrupted_and_resumed_run_ends_with_identical_weights(tmp_path):
    config = train.TrainConfig(iterations=12, lr=3e-3, warmup=3, weight_decay=0.01, weight_decay_end=0.4,
                               checkpoint_every=5, accumulation=2)
    torch.manual_seed(1)
    straight = _head()
    train.fit(straight, _loss_fn(straight), config, tmp_path / "straight", progress=False)

    torch.manual_seed(1)
    first = _head()
    partial = train.fit(first, _loss_fn(first), config, tmp_path / "resumed", progress=False, stop_after=7)
    assert partial.steps_run == 7
    torch.manual_seed(999)  # a new process: other global RNG state, fresh weights
    second = FusionHead(16, 16, FusionerConfig(width=16, layers=2, heads=2, decoder_width=8, decoder_convs=2))
    resumed = train.fit(second, _loss_fn(second), config, tmp_path / "resumed", progress=False)
    assert resumed.resumed_from == 7 and resumed.steps_run == 5
    a, b = _weights(straight), _weights(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert len(resumed.history) == 12
    assert not list((tmp_path / "resumed").glob("*.tmp"))


def test_only_an_unfinished_checkpoint_keeps_the_optimizer_state(tmp_path):
    config = train.TrainConfig(iterations=6, checkpoint_every=100)
    head = _head()
    train.fit(head, _loss_fn(head), config, tmp_path, progress=False, stop_after=3)
    partial = torch.load(tmp_path / train.CHECKPOINT, weights_only=False)
    assert partial["step"] == 3 and {"optimizer", "scaler", "rng"} <= set(partial)
    train.fit(head, _loss_fn(head), config, tmp_path, progress=False)
    final = torch.load(tmp_path / train.CHECKPOINT, weights_only=False)
    assert final["step"] == 6 and not {"optimizer", "scaler", "rng"} & set(final)
    assert set(final["module"]) == set(head.state_dict())


def test_a_finished_run_is_loaded_not_retrained(tmp_path):
    config = train.TrainConfig(iterations=4, checkpoint_every=100)
    head = _head()
    train.fit(head, _loss_fn(head), config, tmp_path, progress=False)
    assert train.is_finished(tmp_path, 4)
    again = _head()
    out = train.fit(again, _loss_fn(again), config, tmp_path, progress=False)
    assert out.steps_run == 0
    for k, v in _weights(head).items():
        assert torch.equal(v, again.state_dict()[k])


def test_a_checkpoint_of_another_schedule_is_refused(tmp_path):
    head = _head()
    train.fit(head, _loss_fn(head), train.TrainConfig(iterations=2), tmp_path, progress=False)
    with pytest.raises(ValueError, match="iterations=2.*iterations=3"):
        train.fit(head, _loss_fn(head), train.TrainConfig(iterations=3), tmp_path, progress=False)


def test_bad_configs_name_the_value():
    with pytest.raises(ValueError, match="iterations must be >= 1, got 0"):
        train.TrainConfig(iterations=0)
    with pytest.raises(ValueError, match="warmup must lie in"):
        train.TrainConfig(iterations=5, warmup=9)


def test_a_non_finite_loss_stops_with_advice():
    lin = nn.Linear(2, 1)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train.fit(lin, lambda s, m: lin(torch.ones(1, 2)).sum() * float("nan"), train.TrainConfig(iterations=2),
                  progress=False)


def test_weight_decay_applies_to_matrices_only():
    head = _head()
    groups = train.default_param_groups(head)
    decay = [g for g in groups if g["decay"]][0]["params"]
    assert all(p.ndim > 1 for p in decay)
    assert sum(len(g["params"]) for g in groups) == len(list(head.parameters()))
    assert math.isclose(train.cosine_value(0, 10, 0.01, 0.4), 0.01)


def test_the_poly_schedule_is_detectron2s_warmup_poly_lr(tmp_path):
    # (1 - t/T)^0.9 without warmup; a linear ramp first when asked
    assert train.poly_value(0, 100, 1e-4) == pytest.approx(1e-4)
    assert train.poly_value(50, 100, 1e-4) == pytest.approx(1e-4 * 0.5 ** 0.9)
    assert train.poly_value(99, 100, 2.0, power=1.0) == pytest.approx(0.02)
    assert train.poly_value(5, 100, 1.0, warmup=10) == pytest.approx(0.5)
    # the loop applies it per step, scaled per group (a backbone at 0.1x keeps its ratio)
    net = nn.Linear(3, 1)
    groups = [{"params": [net.weight], "lr": 1.0}, {"params": [net.bias], "lr": 0.1}]
    config = train.TrainConfig(iterations=4, lr=1.0, schedule="poly", amp=False)
    result = train.fit(net, lambda step, micro: net(torch.ones(1, 3)).sum(), config, param_groups=groups, progress=False)
    assert [h["lr"] for h in result.history] == pytest.approx([(1 - t / 4) ** 0.9 for t in range(4)])
    with pytest.raises(ValueError, match="schedule must be one of"):
        train.TrainConfig(iterations=4, schedule="linear")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train.TrainConfig(iterations=4, optimizer="lamb")


def test_kept_weights_are_the_weights_of_the_run_at_that_step(tmp_path):
    """``keep_every``: the snapshot of step k equals the weights of the same run stopped at step k; the
    last snapshot is the final weights."""
    config = train.TrainConfig(iterations=6, lr=3e-3, checkpoint_every=100)
    torch.manual_seed(1)
    kept = _head()
    train.fit(kept, _loss_fn(kept), config, tmp_path / "kept", progress=False, keep_every=4)
    snaps = train.snapshots(tmp_path / "kept")
    assert sorted(snaps) == [4, 6]
    torch.manual_seed(1)
    stopped = _head()
    train.fit(stopped, _loss_fn(stopped), config, tmp_path / "stopped", progress=False, stop_after=4)
    at4 = torch.load(snaps[4], weights_only=False)["module"]
    for k, v in _weights(stopped).items():
        assert torch.equal(at4[k], v), k
    final = torch.load(snaps[6], weights_only=False)["module"]
    for k, v in _weights(kept).items():
        assert torch.equal(final[k], v), k
