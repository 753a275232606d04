"""The experiments of docs/findings.md: the paper's three findings re-tested at small scale.

* ``designs``: what each finding runs and the statistic it is judged by, fixed before the runs;
* ``pieces``: the resumable pieces that run them (IMP runs, random-mask baselines, ticket transfers);
* ``summaries``: the small committed summaries of the runs (metrics, compact traces, checkpoint statistics);
* ``finding1``, ``finding2``, ``finding3``: each finding's statistics, computed from the summaries alone.

Command line: ``python -m rgprune.experiments --help`` (``make findings-1`` etc. call it).
"""
