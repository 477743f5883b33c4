"""What one decode step costs on this model and machine, learned from the steps it ran:
seconds ≈ fixed + per_token * tokens, a least-squares line over recent steps (older ones
weigh less, so it follows the machine's load). The step planner reads it to decide whether
a short prompt joins a step or waits for the next one: on a CPU a token of prefill costs
about as much as a fifth of a step's fixed cost, on a GPU a thousandth, and no one constant
suits both."""

from __future__ import annotations

from dataclasses import dataclass

# Each step's weight shrinks by this factor per newer step (about 100 steps remembered).
DECAY = 0.99
# Fewer (weighted) steps than this say too little to draw a line through.
MIN_STEPS = 8.0


@dataclass(frozen=True, slots=True)
class Line:
    fixed_s: float  # what a step costs whatever it carries (reading the weights, launches)
    per_token_s: float  # what each token in it adds


@dataclass(slots=True)
class StepCost:
    # Exponentially weighted sums over the steps seen: weight, tokens, seconds, tokens²,
    # tokens*seconds.
    _w: float = 0.0
    _n: float = 0.0
    _t: float = 0.0
    _nn: float = 0.0
    _nt: float = 0.0

    def observe(self, tokens: int, seconds: float) -> None:
        self._w = DECAY * self._w + 1.0
        self._n = DECAY * self._n + tokens
        self._t = DECAY * self._t + seconds
        self._nn = DECAY * self._nn + tokens * tokens
        self._nt = DECAY * self._nt + tokens * seconds

    def line(self) -> Line | None:
        """The fitted line, or None while the steps seen cannot tell fixed from per-token
        cost (too few of them, all of about one size, or a fit that makes no sense)."""
        if self._w < MIN_STEPS:
            return None
        mean_n, mean_t = self._n / self._w, self._t / self._w
        spread = self._nn / self._w - mean_n * mean_n
        if spread < 1.0:
            return None
        per_token = (self._nt / self._w - mean_n * mean_t) / spread
        fixed = mean_t - per_token * mean_n
        if per_token <= 0 or fixed < 0:
            return None
        return Line(fixed, per_token)
