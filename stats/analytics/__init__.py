"""Time-series analytics on a finished series: regular intervals, gap filling and smoothing, season metrics.

* :mod:`.options` parses the ``aggregation``, ``fill`` and ``season`` request fields;
* :mod:`.intervals` is the calendar arithmetic of ISO-8601 steps (shared with the Statistical API);
* :mod:`.series` turns a series (or a batch table's rows for one polygon) into columns;
* :mod:`.composite`, :mod:`.smoothing` and :mod:`.season` compute, :mod:`.compute` runs what is asked;
* :mod:`.outputs` holds the answers and their JSON and CSV forms.

Every analytic uses the same clear dates: :meth:`stats.clouds.options.CloudOptions.clear`.
"""
