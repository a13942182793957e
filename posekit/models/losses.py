"""Training losses: ``LossParts`` (the total and its named parts per stage); the bottom-up loss
(masked MSE on heatmaps and PAFs, summed over the network's stages); the top-down losses
(keypoint-weighted heatmap MSE, SimCC's KL divergence, RLE's Laplace likelihood)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from posekit.codecs.paf import PafCodec
from posekit.errors import ConfigError


@dataclass(frozen=True)
class LossParts:
    """The total loss and its named parts (detached floats, for logging).

    Attributes:
        total: the scalar to minimise (stage weights applied).
        parts: part name (an output of the codec layout, e.g. ``"heatmaps"``) -> its value per
            network stage, first stage first, unweighted.
    """

    total: torch.Tensor
    parts: Mapping[str, tuple[float, ...]]


class BottomUpLoss(torch.nn.Module):
    """``sum_s w_s * (masked MSE(heatmaps_s) + masked MSE(pafs_s))``.

    Each squared error is multiplied by the loss mask (0 on crowds and unlabeled people) and, for
    keypoint heatmap channels, by the schema's ``joint_weights`` (background channel: 1); the sum
    is divided by the batch size (the Lightweight OpenPose normalisation, which keeps gradients of
    small, sparse targets from vanishing), then by 2.

    Foreground weights (``fg_weights = (a, b)``): the squared error of a keypoint heatmap cell is
    also multiplied by ``1 + a * target`` and that of a PAF cell on a limb (non-zero target) by
    ``1 + b``. The targets are mostly background, so plain MSE first drives the network to the
    all-zero maps and finds the peaks and limbs only later; weighting them shortens that phase
    (``posekit train``'s default (10, 4): val AP 0.47 instead of 0.11 after the first epoch of the
    default synthetic run, README "Training"). ``(0, 0)`` is Lightweight OpenPose's plain loss.

    Args:
        codec: the PAF codec (its schema's ``joint_weights`` weigh the keypoint channels).
        stage_weights: one weight per network stage (default 1 each).
        fg_weights: (a, b) >= 0, above; default (0, 0).
    """

    def __init__(
        self,
        codec: PafCodec,
        stage_weights: Sequence[float] | None = None,
        fg_weights: Sequence[float] = (0.0, 0.0),
    ):
        super().__init__()
        background = codec.num_heatmaps - codec.schema.num_keypoints
        weights = list(codec.schema.joint_weights) + [1.0] * background
        self.register_buffer("channel_weights", torch.tensor(weights).view(1, -1, 1, 1))
        keypoints = [1.0] * codec.schema.num_keypoints + [0.0] * background
        self.register_buffer("keypoint_channels", torch.tensor(keypoints).view(1, -1, 1, 1))
        self.stage_weights = None if stage_weights is None else tuple(stage_weights)
        fg = tuple(float(w) for w in fg_weights)
        if len(fg) != 2 or not all(math.isfinite(w) and w >= 0 for w in fg):
            raise ConfigError(
                f"fg_weights must be two numbers >= 0 (heatmaps, PAFs), got {fg_weights!r}"
            )
        self.fg_weights = fg

    def forward(
        self,
        outputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
        heatmaps: torch.Tensor,
        pafs: torch.Tensor,
        mask: torch.Tensor,
    ) -> LossParts:
        """Loss of every stage's ``(heatmaps (B, K+1, h, w), pafs (B, 2L, h, w))``.

        ``heatmaps``, ``pafs``: targets of the same shapes; ``mask``: (B, h, w) loss weights.
        """
        if self.stage_weights is not None and len(self.stage_weights) != len(outputs):
            raise ValueError(
                f"stage_loss_weights has {len(self.stage_weights)} values but the model has "
                f"{len(outputs)} stages"
            )
        weights = self.stage_weights or (1.0,) * len(outputs)
        m = mask.unsqueeze(1)
        w_heat, w_paf = m * self.channel_weights, m
        fg_heat, fg_paf = self.fg_weights
        if fg_heat:
            w_heat = w_heat * (1.0 + fg_heat * heatmaps * self.keypoint_channels)
        if fg_paf:
            w_paf = m * (1.0 + fg_paf * (pafs != 0).to(pafs.dtype))
        batch = heatmaps.shape[0]
        total = heatmaps.new_zeros(())
        parts_h, parts_p = [], []
        for w, (pred_h, pred_p) in zip(weights, outputs, strict=True):
            if pred_h.shape != heatmaps.shape or pred_p.shape != pafs.shape:
                raise ValueError(
                    f"stage output shapes {tuple(pred_h.shape)}, {tuple(pred_p.shape)} do not "
                    f"match the targets {tuple(heatmaps.shape)}, {tuple(pafs.shape)}"
                )
            loss_h = ((pred_h - heatmaps) ** 2 * w_heat).sum() / batch / 2
            loss_p = ((pred_p - pafs) ** 2 * w_paf).sum() / batch / 2
            total = total + w * (loss_h + loss_p)
            parts_h.append(float(loss_h.detach()))
            parts_p.append(float(loss_p.detach()))
        return LossParts(total, {"heatmaps": tuple(parts_h), "pafs": tuple(parts_p)})


# ---------------------------------------------------------------------- top-down losses
# keypoint-weighted heatmap MSE, SimCC's KL divergence, RLE's Laplace likelihood; the weights
# (N, K) come from the codec's targets (``keypoint_weights``: joint weights, 0 = ignore).


def _check_shapes(
    name: str, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> None:
    """ConfigError unless ``pred`` and ``target`` have one shape and ``weights`` is its (N, K)."""
    if pred.shape != target.shape or weights.shape != pred.shape[:2]:
        raise ConfigError(
            f"{name}: expected predictions and targets of one shape (N, K, ...) and keypoint "
            f"weights (N, K), got {tuple(pred.shape)}, {tuple(target.shape)} and "
            f"{tuple(weights.shape)}"
        )


class KeypointMSELoss(torch.nn.Module):
    """Keypoint-weighted mean squared error of top-down heatmaps::

        L = 1/N sum_n [ 1/(K h w) sum_{k, i, j} w_nk (p_nkij - t_nkij)^2 ]

    the mean over the N instances of each one's weighted mean squared error, i.e. the mean over
    every element of ``w * (p - t)^2`` (MMPose's ``KeypointMSELoss`` with ``use_target_weight``,
    always on here: weights carry the schema's ``joint_weights`` and zero unlabelled keypoints).

    With ``fg_weight`` a > 0 each element also weighs ``1 + a * t_nkij``, as ``BottomUpLoss``'s
    heatmaps: the peaks count more than the background that dominates the mean (``posekit
    train``'s default a = 10: ``topdown_tiny`` at val AP 0.42 instead of 0.02 after its first
    epoch on synthetic data and 0.734 instead of 0.717 after 12). a = 0 is MMPose's loss.
    """

    def __init__(self, fg_weight: float = 0.0) -> None:
        super().__init__()
        if not (math.isfinite(fg_weight) and fg_weight >= 0):
            raise ConfigError(f"fg_weight must be a number >= 0, got {fg_weight!r}")
        self.fg_weight = float(fg_weight)

    def forward(
        self, heatmaps: torch.Tensor, target: torch.Tensor, keypoint_weights: torch.Tensor
    ) -> torch.Tensor:
        """Scalar loss of predicted ``heatmaps`` (N, K, h, w) against ``target`` (N, K, h, w)
        with ``keypoint_weights`` (N, K) (``Targets.keypoint_weights``)."""
        _check_shapes("KeypointMSELoss", heatmaps, target, keypoint_weights)
        w = keypoint_weights.reshape(*keypoint_weights.shape, *(1,) * (heatmaps.dim() - 2))
        if self.fg_weight:
            w = w * (1.0 + self.fg_weight * target)
        return ((heatmaps - target) ** 2 * w).mean()


class SimccKLLoss(torch.nn.Module):
    """KL divergence of SimCC's 1-D distributions (MMPose's ``KLDiscretLoss`` style)::

        p^a_nk = softmax(beta * z^a_nk)          (over the bins of axis a in {x, y})
        q^a_nk = t^a_nk / sum_b t^a_nkb          (the labels as a distribution)
        L = 1/2 sum_a [ 1/(N K) sum_{n,k} w_nk KL(q^a_nk || p^a_nk) ],
        KL(q || p) = sum_b q_b (log q_b - log p_b)   (0 log 0 = 0)

    so a prediction with ``softmax(beta * z) == q`` has loss 0. Differences from MMPose, for
    porting learning rates: MMPose averages the KL over the bins instead of summing it and sums
    over instances and both axes instead of averaging (its term of an axis of L bins is 2N / L
    times this one's); it uses the labels as given (or their softmax), where this normalizes them.

    Args:
        beta: temperature of the softmax over the predicted logits (RTMPose: 10.0).
    """

    def __init__(self, beta: float = 10.0):
        super().__init__()
        if not beta > 0:
            raise ConfigError(f"SimccKLLoss: beta must be > 0, got {beta!r}")
        self.beta = float(beta)

    def forward(
        self,
        simcc_x: torch.Tensor,
        simcc_y: torch.Tensor,
        target_x: torch.Tensor,
        target_y: torch.Tensor,
        keypoint_weights: torch.Tensor,
    ) -> torch.Tensor:
        """Scalar loss of predicted logits ``simcc_x`` (N, K, Wx), ``simcc_y`` (N, K, Wy) against
        the labels ``target_x``, ``target_y`` of the same shapes (``SimccTargets``) with
        ``keypoint_weights`` (N, K)."""
        total = simcc_x.new_zeros(())
        for pred, target in ((simcc_x, target_x), (simcc_y, target_y)):
            _check_shapes("SimccKLLoss", pred, target, keypoint_weights)
            log_p = torch.log_softmax(self.beta * pred, dim=-1)
            q = target / target.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(target.dtype).tiny)
            kl = (torch.xlogy(q, q) - q * log_p).sum(dim=-1)  # (N, K)
            total = total + 0.5 * (keypoint_weights * kl).mean()
        return total


class RleLoss(torch.nn.Module):
    """Negative log-likelihood of a Laplace distribution per coordinate (RLE, Li et al., 2021,
    "Human Pose Regression with Residual Log-likelihood Estimation", without its normalizing
    flow)::

        s = max(sigma, eps)
        nll = log(s) + |mu - t| / s + log 2         (per keypoint and coordinate)
        L = 1/(2 N K) sum_{n,k,c} w_nk nll_nkc

    The minimum over sigma is at ``sigma = |mu - t|``, and the gradient pulls mu towards t with
    magnitude ``w / sigma`` (over 2NK): an uncertain keypoint pulls less. Coordinates and sigmas
    are in the codec's normalized units (``codecs.regression.RleCodec``).

    Args:
        eps: floor of sigma, 1e-4 by default: at sigma = 0, log and division give inf / NaN, and
            with the floor the gradients ``1 / s`` (<= 1e4) and ``|mu - t| / s^2`` stay finite in
            float32. In normalized units 1e-4 is 0.03 px of a 256-px crop side, well below the
            noise of keypoint labels, so the floor only binds on errors no label can check; heads
            give sigma > 0 (sigmoid / softplus); below the floor sigma gets no gradient.
    """

    def __init__(self, eps: float = 1e-4):
        super().__init__()
        if not eps > 0:
            raise ConfigError(f"RleLoss: eps must be > 0, got {eps!r}")
        self.eps = float(eps)

    def forward(
        self,
        coords: torch.Tensor,
        sigmas: torch.Tensor,
        target: torch.Tensor,
        keypoint_weights: torch.Tensor,
    ) -> torch.Tensor:
        """Scalar loss of predicted means ``coords`` (N, K, 2) and scales ``sigmas`` (N, K, 2)
        against ``target`` (N, K, 2) (``RegressionTargets.coords``) with ``keypoint_weights``
        (N, K)."""
        _check_shapes("RleLoss", coords, target, keypoint_weights)
        _check_shapes("RleLoss", sigmas, target, keypoint_weights)
        s = sigmas.clamp_min(self.eps)
        nll = torch.log(s) + (coords - target).abs() / s + math.log(2.0)
        return (nll * keypoint_weights[..., None]).mean()


class KeypointL1Loss(torch.nn.Module):
    """Keypoint-weighted mean absolute error of regressed coordinates::

        L = 1/(2 N K) sum_{n,k,c} w_nk |p_nkc - t_nkc|

    in the codec's normalized units (``codecs.regression.RegressionCodec``; MMPose's ``L1Loss``
    with ``use_target_weight``)."""

    def forward(
        self, coords: torch.Tensor, target: torch.Tensor, keypoint_weights: torch.Tensor
    ) -> torch.Tensor:
        """Scalar loss of predicted ``coords`` (N, K, 2) against ``target`` (N, K, 2) with
        ``keypoint_weights`` (N, K)."""
        _check_shapes("KeypointL1Loss", coords, target, keypoint_weights)
        return ((coords - target).abs() * keypoint_weights[..., None]).mean()
