"""avg@n and the unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code").

The paper's metric (SRPO Table 1, SRPO_SPEC §2 "Metric") is avg@16: the mean correctness over 16 samples per test
question at T=0.6, top-p 0.95, averaged over questions. pass@k is reported alongside it for completeness.
"""

from __future__ import annotations

from collections.abc import Sequence


def unbiased_pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n is correct, given c correct.

    Estimator 1 − C(n−c, k) / C(n, k), evaluated as the product 1 − Π_{i=n−c+1..n} (1 − k/i), which avoids the huge
    binomials. Requires 0 ≤ c ≤ n and 1 ≤ k ≤ n (a ValueError names the offending values otherwise).
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise ValueError(f"pass@k needs integer n, c, k; got n={n!r}, c={c!r}, k={k!r}")
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"pass@k needs n >= 1 and 0 <= c <= n; got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n; got k={k} with n={n} samples")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean over questions of `unbiased_pass_at_k(n_i, c_i, k)`; `counts` holds one (n_i, c_i) per question."""
    if not counts:
        raise ValueError("pass@k over an empty set of questions")
    return sum(unbiased_pass_at_k(n, c, k) for n, c in counts) / len(counts)


def mean_avg_at_n(counts: Sequence[tuple[int, int]]) -> float:
    """avg@n: the mean over questions of c_i / n_i (the per-question accuracy), in [0, 1]."""
    if not counts:
        raise ValueError("avg@n over an empty set of questions")
    for n, c in counts:
        if n < 1 or not 0 <= c <= n:
            raise ValueError(f"avg@n needs n >= 1 and 0 <= c <= n; got n={n}, c={c}")
    return sum(c / n for n, c in counts) / len(counts)
