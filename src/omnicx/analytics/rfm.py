"""RFM scores (1-5 quintiles of recency, frequency and monetary value) and the segment they name.

Scores are quintiles of each customer's rank among all customers; tied customers share the lower
score, so the many one-order customers all get frequency 1 rather than being spread over 1-3 by
accident of sort order. Recency ranks the most recent last order highest.

The segment comes from recency and frequency with the common 5×5 map (R then F):
``[1-2][1-2]`` hibernating, ``[1-2][3-4]`` at_risk, ``[1-2]5`` cant_lose, ``3[1-2]``
about_to_sleep, ``33`` need_attention, ``[3-4][4-5]`` loyal, ``41`` promising, ``51`` new,
``[4-5][2-3]`` potential_loyalist, ``5[4-5]`` champions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

IntArray = npt.NDArray[np.int64]

# _SEGMENTS[r - 1][f - 1]
_SEGMENTS = (
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"),
    ("new", "potential_loyalist", "potential_loyalist", "champions", "champions"),
)


def quintile_scores(values: npt.ArrayLike) -> IntArray:
    """1-5 by rank; ties share the lower score; the highest values score 5."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = rankdata(data, method="min")
    scores: IntArray = (1 + (5 * (ranks - 1)) // data.size).astype(np.int64)
    return scores


def segment(recency: int, frequency: int) -> str:
    return _SEGMENTS[recency - 1][frequency - 1]


def segments(recency: IntArray, frequency: IntArray) -> list[str]:
    return [
        _SEGMENTS[r - 1][f - 1] for r, f in zip(recency.tolist(), frequency.tolist(), strict=True)
    ]
