"""Top-down losses (KeypointMSELoss, SimccKLLoss, RleLoss): values against direct formulas,
zero-weight keypoints, minima at perfect predictions, gradients, shape errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posekit import ConfigError, KeypointSchema
from posekit.codecs.regression import RleCodec
from posekit.codecs.simcc import SimccCodec
from posekit.models.losses import KeypointMSELoss, RleLoss, SimccKLLoss


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _weights(n: int = 3, k: int = 4, seed: int = 9) -> torch.Tensor:
    """(n, k) weights in {0, 0.5, 1, 2}, some zero."""
    w = torch.tensor([0.0, 0.5, 1.0, 2.0])[torch.randint(0, 4, (n, k), generator=_gen(seed))]
    w[0, 0] = 0.0
    return w


# ---------------------------------------------------------------------- KeypointMSELoss
def test_mse_matches_the_formula():
    pred, target = (
        torch.rand(3, 4, 5, 6, generator=_gen(0)),
        torch.rand(3, 4, 5, 6, generator=_gen(1)),
    )
    w = _weights()
    loss = KeypointMSELoss()(pred, target, w)
    expected = 0.0
    for n in range(3):  # mean over instances of each one's weighted mean squared error
        expected += sum(w[n, k] * ((pred[n, k] - target[n, k]) ** 2).mean() for k in range(4)) / 4
    torch.testing.assert_close(loss, expected / 3)
    assert loss.dim() == 0


def test_mse_foreground_weight_weighs_each_element_by_its_target():
    pred, target = (
        torch.rand(3, 4, 5, 6, generator=_gen(0)),
        torch.rand(3, 4, 5, 6, generator=_gen(1)),
    )
    w = _weights()
    loss = KeypointMSELoss(fg_weight=10.0)(pred, target, w)
    expected = ((pred - target) ** 2 * w[..., None, None] * (1 + 10 * target)).mean()
    torch.testing.assert_close(loss, expected)
    assert KeypointMSELoss(10.0)(target, target, w) == 0
    for bad in (-1.0, float("inf")):
        with pytest.raises(ConfigError, match="fg_weight must be a number >= 0"):
            KeypointMSELoss(bad)


def test_mse_ignores_zero_weight_keypoints_and_is_zero_when_perfect():
    pred, target = (
        torch.rand(3, 4, 5, 6, generator=_gen(0)),
        torch.rand(3, 4, 5, 6, generator=_gen(1)),
    )
    w = _weights()
    loss = KeypointMSELoss()(pred, target, w)
    changed = pred + 100.0 * (w == 0)[..., None, None]
    torch.testing.assert_close(KeypointMSELoss()(changed, target, w), loss)
    assert KeypointMSELoss()(target, target, w) == 0


def test_mse_gradient_flows():
    pred = torch.rand(2, 3, 4, 4, generator=_gen(2), requires_grad=True)
    target = torch.rand(2, 3, 4, 4, generator=_gen(3))
    w = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 1.0]])
    KeypointMSELoss()(pred, target, w).backward()
    expected = 2 * (pred - target) * w[..., None, None] / pred.numel()
    torch.testing.assert_close(pred.grad, expected.detach())
    assert (pred.grad[0, 1] == 0).all()


# ---------------------------------------------------------------------- SimccKLLoss
def _kl_direct(logits: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    """(N, K) KL(q || p) with p = softmax(beta z), q = labels / sum, written out."""
    p = torch.exp(beta * logits) / torch.exp(beta * logits).sum(-1, keepdim=True)
    q = labels / labels.sum(-1, keepdim=True)
    terms = torch.where(q > 0, q * torch.log(q / p), torch.zeros_like(q))
    return terms.sum(-1)


def test_kl_matches_the_formula():
    zx, zy = torch.randn(3, 4, 7, generator=_gen(0)), torch.randn(3, 4, 9, generator=_gen(1))
    tx, ty = torch.rand(3, 4, 7, generator=_gen(2)), torch.rand(3, 4, 9, generator=_gen(3))
    tx[1, 2, :3] = 0.0  # zero label bins (0 log 0 = 0)
    w = _weights()
    loss = SimccKLLoss(beta=2.0)(zx, zy, tx, ty, w)
    expected = 0.5 * (
        (w * _kl_direct(zx, tx, 2.0)).sum() / 12 + (w * _kl_direct(zy, ty, 2.0)).sum() / 12
    )
    torch.testing.assert_close(loss, expected)
    assert loss.dim() == 0 and loss > 0
    assert SimccKLLoss().beta == 10.0


def test_kl_is_zero_for_identical_distributions_and_ignores_zero_weights():
    tx, ty = torch.rand(3, 4, 7, generator=_gen(4)) + 0.1, torch.rand(3, 4, 9, generator=_gen(5))
    ty = ty + 0.1
    beta = 10.0
    zx, zy = torch.log(tx) / beta, torch.log(ty) / beta  # softmax(beta z) == t / sum(t)
    w = _weights()
    loss_fn = SimccKLLoss(beta)
    assert loss_fn(zx, zy, tx, ty, w).abs() < 1e-6
    noisy_x = zx + torch.randn(3, 4, 7, generator=_gen(6))
    loss = loss_fn(noisy_x, zy, tx, ty, w)
    assert loss > 0
    changed = noisy_x + 50.0 * torch.randn(3, 4, 7, generator=_gen(7)) * (w == 0)[..., None]
    torch.testing.assert_close(loss_fn(changed, zy, tx, ty, w), loss)
    # the scale of the labels does not matter (normalized to distributions)
    torch.testing.assert_close(loss_fn(noisy_x, zy, 3 * tx, ty, w), loss)


def test_kl_gradient_flows_and_vanishes_at_the_target():
    tx, ty = torch.rand(2, 3, 7, generator=_gen(8)) + 0.1, torch.rand(2, 3, 5, generator=_gen(9))
    ty = ty + 0.1
    w = torch.ones(2, 3)
    zx = (torch.log(tx) / 10.0).requires_grad_()
    zy = torch.zeros(2, 3, 5, requires_grad=True)
    SimccKLLoss()(zx, zy, tx, ty, w).backward()
    assert zx.grad.abs().max() < 1e-6  # minimum: beta (p - q) = 0
    q = ty / ty.sum(-1, keepdim=True)
    expected = 0.5 * 10.0 * (torch.full_like(q, 1 / 5) - q) / 6  # beta (p - q) w / (2 N K)
    torch.testing.assert_close(zy.grad, expected)


def test_kl_trains_simcc_labels_of_the_codec():
    """A few steps on the codec's own labels bring the decoded keypoint to the target."""
    schema = KeypointSchema(name="one", keypoints=("a",))
    codec = SimccCodec(schema, input_size=(16, 12), sigma=1.5)
    t = codec.encode(np.array([[[5.3, 7.8, 2]]]))
    tx, ty = torch.from_numpy(t.simcc_x), torch.from_numpy(t.simcc_y)
    w = torch.from_numpy(t.keypoint_weights)
    zx = torch.zeros_like(tx, requires_grad=True)
    zy = torch.zeros_like(ty, requires_grad=True)
    opt = torch.optim.Adam([zx, zy], lr=0.1)
    loss_fn = SimccKLLoss()
    for _ in range(100):
        opt.zero_grad()
        loss = loss_fn(zx, zy, tx, ty, w)
        loss.backward()
        opt.step()
    assert loss.item() < 0.01
    px, py = (torch.softmax(10 * z, -1).detach().numpy() for z in (zx, zy))
    kpts, _ = codec.decode_keypoints(px, py)
    got = (
        kpts[0, 0] @ codec.output_to_input_matrix()[:, :2].T + codec.output_to_input_matrix()[:, 2]
    )
    np.testing.assert_allclose(got, [5.3, 7.8], atol=0.05)


# ---------------------------------------------------------------------- RleLoss
def test_rle_matches_the_formula():
    mu, t = torch.rand(3, 4, 2, generator=_gen(0)), torch.rand(3, 4, 2, generator=_gen(1))
    sigma = torch.rand(3, 4, 2, generator=_gen(2)) * 0.3 + 0.01
    w = _weights()
    loss = RleLoss()(mu, sigma, t, w)
    nll = torch.log(sigma) + (mu - t).abs() / sigma + math.log(2.0)
    torch.testing.assert_close(loss, (nll * w[..., None]).sum() / (3 * 4 * 2))
    assert loss.dim() == 0


def test_rle_floors_sigma_and_ignores_zero_weights():
    mu, t = torch.rand(3, 4, 2, generator=_gen(3)), torch.rand(3, 4, 2, generator=_gen(4))
    sigma = torch.rand(3, 4, 2, generator=_gen(5)) * 0.3 + 0.01
    w = _weights()
    loss_fn = RleLoss()
    loss = loss_fn(mu, sigma, t, w)
    zero = (w == 0)[..., None]
    changed = loss_fn(mu + 9 * zero, torch.where(zero, torch.zeros_like(sigma), sigma), t, w)
    torch.testing.assert_close(changed, loss)  # sigma 0 on ignored keypoints: still finite
    tiny = loss_fn(mu, torch.zeros_like(sigma), t, torch.ones(3, 4))
    floor = RleLoss().eps
    expected = (math.log(floor) + (mu - t).abs() / floor + math.log(2.0)).mean()
    torch.testing.assert_close(tiny, expected)
    assert RleLoss(eps=1e-3).eps == 1e-3


def test_rle_gradient_pulls_mu_to_the_target_and_sigma_to_the_error():
    t = torch.tensor([[[0.5, 0.5], [0.2, 0.8]]])
    mu = torch.tensor([[[0.6, 0.4], [0.2, 0.5]]], requires_grad=True)
    err = (mu - t).abs().detach()
    sigma = torch.tensor([[[0.3, 0.05], [0.1, 0.3]]], requires_grad=True)  # > err, < err, ...
    w = torch.ones(1, 2)
    RleLoss()(mu, sigma, t, w).backward()
    moved = mu.grad[mu.detach() != t]
    assert (torch.sign(moved) == torch.sign((mu - t).detach()[mu.detach() != t])).all()  # descent
    signs = torch.sign(sigma.grad)[err > 0]
    assert (signs == torch.sign(sigma.detach() - err)[err > 0]).all()  # towards |mu - t|
    # at sigma = |mu - t| the gradient in sigma vanishes: the minimum over sigma
    at_err = err.clamp_min(1e-3).requires_grad_()
    RleLoss()(mu.detach(), at_err, t, w).backward()
    assert at_err.grad[err > 0].abs().max() < 1e-4
    # gradient descent on sigma alone converges to |mu - t|
    s = torch.full((1, 2, 2), 0.2, requires_grad=True)
    opt = torch.optim.Adam([s], lr=0.01)
    for _ in range(400):
        opt.zero_grad()
        RleLoss()(mu.detach(), s, t, w).backward()
        opt.step()
    torch.testing.assert_close(s.detach()[err > 0], err[err > 0], atol=2e-3, rtol=0.0)


def test_rle_trains_the_codec_outputs():
    """Means and scales fitted with the loss decode to the targets with scores near 1."""
    codec = RleCodec(KeypointSchema.named("coco_person"))
    rng = np.random.default_rng(0)
    kpts = np.concatenate([rng.uniform(10, 180, (4, 17, 2)), np.full((4, 17, 1), 2.0)], -1)
    t = codec.encode(kpts)
    target, w = torch.from_numpy(t.coords), torch.from_numpy(t.keypoint_weights)
    mu = torch.full_like(target, 0.5, requires_grad=True)
    raw = torch.zeros_like(target, requires_grad=True)  # sigma = sigmoid(raw), as a head does
    opt = torch.optim.Adam([{"params": [mu], "lr": 0.02}, {"params": [raw], "lr": 0.2}])
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.98)  # Adam's steps shrink
    for _ in range(300):
        opt.zero_grad()
        RleLoss()(mu, torch.sigmoid(raw), target, w).backward()
        opt.step()
        schedule.step()
    kp, scores = codec.decode_keypoints(mu.detach(), torch.sigmoid(raw).detach())
    err = np.abs(
        kp @ codec.output_to_input_matrix()[:, :2].T
        + codec.output_to_input_matrix()[:, 2]
        - kpts[..., :2]
    )
    assert err.max() < 0.05 and scores.min() > 0.95  # input px


@pytest.mark.parametrize(
    "call",
    [
        lambda: KeypointMSELoss()(
            torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5), torch.ones(2, 3)
        ),
        lambda: KeypointMSELoss()(
            torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), torch.ones(2, 4)
        ),
        lambda: SimccKLLoss()(*[torch.zeros(2, 3, 8)] * 3, torch.zeros(2, 3, 9), torch.ones(2, 3)),
        lambda: RleLoss()(
            torch.zeros(2, 3, 2), torch.zeros(2, 4, 2), torch.zeros(2, 3, 2), torch.ones(2, 3)
        ),
    ],
    ids=["mse-target", "mse-weights", "kl-target", "rle-sigmas"],
)
def test_shape_mismatches_are_named(call):
    with pytest.raises(ConfigError, match=r"expected predictions and targets of one shape"):
        call()


def test_bad_loss_parameters():
    with pytest.raises(ConfigError, match="SimccKLLoss: beta must be > 0, got 0"):
        SimccKLLoss(beta=0)
    with pytest.raises(ConfigError, match="RleLoss: eps must be > 0, got -1"):
        RleLoss(eps=-1)
