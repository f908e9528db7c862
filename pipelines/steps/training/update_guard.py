"""The stronger Opacus #820 guard (issue #18.6): the update follows the clipped gradient.

The failure of Opacus issue #820 (hooks not registered on the LoRA tensors) leaves the
per-sample gradients at zero: DP-SGD then adds its noise to a zero sum and the update is pure
noise. Such a model still "moves", so a guard that only checks movement passes it. This guard
checks, over the first `GUARD_STEPS` steps with a non-empty batch, that the parameter update of
each step points along the clipped gradient sum S measured before noise (Opacus's
`summed_grad`; the plain gradient for the non-private control).

The statistic. Over the d trainable LoRA coordinates, let u be the parameter update of a step
and z = -cos(u, S) * sqrt(d). If the update does not depend on S (pure noise, or updates applied
to other tensors), z is about standard normal whatever S is (the cosine of a fixed vector with
a symmetric random one has variance 1/d). If the update is the noised gradient S + N, with N of
std sigma * C per coordinate (sigma the gradient noise multiplier, C the clipping norm; the
std per coordinate of the averaged update is sigma * C / B for a batch of B), its expected value
is about

    e = sqrt(d) * |S| / sqrt(|S|^2 + d * sigma^2 * C^2)

(SGD's update direction). Adam rescales each coordinate: its first update is the sign of the
noised gradient (a factor sqrt(2/pi) ~ 0.8 on e) and its momentum mixes the steps before (about
0.5 to 0.75 over the next steps when consecutive gradients are unrelated, more when they agree),
so the guard expects `ADAM_FACTOR * e` under Adam. Over K steps, Z = sum(z) / sqrt(K) is
standard normal under "pure noise", and E = factor * sum(e) / sqrt(K) is what a healthy run
gives. The verdict:

- fail when every observed step with a non-empty batch had S = 0 (the #820 failure itself);
- pass when Z >= `Z_PASS` (the update follows S beyond what noise alone gives, p < 0.0014);
- fail when Z < `Z_PASS` although E >= `E_DECISIVE` (a healthy run would be `E_DECISIVE` -
  `Z_PASS` = 3 standard deviations higher);
- otherwise pass as inconclusive: at this noise, batch and dimension the first steps cannot tell
  a healthy update from noise (more noise than signal per step by a wide margin).

It costs one copy of the LoRA tensors and two dot products per observed step. Nothing it
measures is published: the training result and the checkpoint keep only the verdict
(True/False), never z, e, |S| or a cosine (un-noised statistics of private records).
"""

import math
from collections.abc import Iterable

import torch

GUARD_STEPS = 4
"""Steps with a non-empty batch the guard observes, from the first one this process runs."""
Z_PASS = 3.0
"""Z at or above which the update is taken to follow the clipped gradient."""
E_DECISIVE = 6.0
"""Expected Z (healthy run) at or above which a Z below `Z_PASS` fails the guard."""
ADAM_FACTOR = 0.5
"""Lower bound on the share of the SGD statistic Adam's update keeps (see the module text)."""


class UpdateGuard:
    """Watch the first steps of a run; `verdict` is True (pass), False (fail) or None (no step
    with a non-empty batch was observed)."""

    def __init__(self, params: Iterable[torch.Tensor], *, sgd: bool, verdict: bool | None = None):
        self.params = list(params)
        self.factor = 1.0 if sgd else ADAM_FACTOR
        self._z: list[float] = []
        self._e: list[float] = []
        self._zero_steps = 0
        self._before: list[torch.Tensor] | None = None
        self._noise_std = 0.0
        self._decided = verdict

    @property
    def watching(self) -> bool:
        """True while the guard still needs steps."""
        return self._decided is None and len(self._z) + self._zero_steps < GUARD_STEPS

    def before_update(self, optimizer: torch.optim.Optimizer, *, private: bool) -> None:
        """Snapshot the LoRA tensors and the noise std of the coming optimizer step."""
        if not self.watching:
            return
        self._before = [p.detach().clone() for p in self.params]
        self._noise_std = noise_std(optimizer) if private else 0.0

    def after_update(self, *, private: bool, units: int) -> None:
        """Measure a completed step (`units`: privacy units in its batch; 0 skips it)."""
        before, self._before = self._before, None
        if not self.watching or before is None or not units:
            return
        signal = torch.cat(
            [_clipped_sum(p, private=private).reshape(-1) for p in self.params]
        ).double()
        update = torch.cat(
            [(p.detach() - b).reshape(-1) for p, b in zip(self.params, before, strict=True)]
        ).double()
        signal_norm = float(signal.norm())
        if signal_norm == 0.0:
            self._zero_steps += 1
            return
        d = signal.numel()
        update_norm = float(update.norm())
        cosine = -float(update @ signal) / (update_norm * signal_norm) if update_norm else 0.0
        self._z.append(cosine * math.sqrt(d))
        self._e.append(
            math.sqrt(d) * signal_norm / math.sqrt(signal_norm**2 + d * self._noise_std**2)
        )

    @property
    def verdict(self) -> bool | None:
        """The guard's pass (True) or fail (False); None before any non-empty step."""
        if self._decided is not None:
            return self._decided
        if not self._z:
            return False if self._zero_steps else None
        k = len(self._z)
        z = sum(self._z) / math.sqrt(k)
        expected = self.factor * sum(self._e) / math.sqrt(k)
        if not self.watching:
            self._decided = z >= Z_PASS or expected < E_DECISIVE
            return self._decided
        return z >= Z_PASS or expected < E_DECISIVE


def noise_std(optimizer: torch.optim.Optimizer) -> float:
    """Std per coordinate of the noise the coming step adds to the clipped sum: the gradient
    noise multiplier (the adaptive bound's share when adaptive) times the current bound."""
    multiplier = getattr(optimizer, "gradient_noise_multiplier", None)
    if multiplier is None:
        multiplier = getattr(optimizer, "noise_multiplier", 0.0)
    return float(multiplier) * float(getattr(optimizer, "max_grad_norm", 0.0))


def is_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """True when the optimizer (or the one Opacus wraps) is plain SGD."""
    return isinstance(getattr(optimizer, "original_optimizer", optimizer), torch.optim.SGD)


def _clipped_sum(p: torch.Tensor, *, private: bool) -> torch.Tensor:
    """The clipped gradient sum before noise (Opacus keeps it in `summed_grad` until the next
    `zero_grad`), or the plain gradient of the control; zeros when there is none."""
    grad = getattr(p, "summed_grad", None) if private else p.grad
    return torch.zeros_like(p) if grad is None else grad.detach()
