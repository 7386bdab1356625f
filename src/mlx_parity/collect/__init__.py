"""The collector: gather a round's seed results, compare every probe with the baseline, and
report.

One job per module: ``gather`` reads artifacts and lists every problem, ``compare`` builds the
typed :class:`RoundReport`, and ``markdown``, ``html`` and ``report`` render it. Renderers take
only the report, so a report JSON can be rendered again without the artifacts.
"""

from __future__ import annotations
