"""Review exports: CAP 1.2 alerts of an incident's public notices, the after-action report,
and the timeline as CSV.

``cap``, ``report`` and ``timeline`` are pure (data in, text out); ``exports`` gathers their
data from the store for the HTTP API and the command line.
"""
