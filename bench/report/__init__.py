"""The report tool: REPORT.md and its plots, rendered from ``results.json`` alone, and ``compare``.

A report never needs the bench to run again: everything it shows comes from the results file, so
``python -m bench.report render reports/smoke/results.json`` re-renders ``REPORT.md`` and the plots
after a change to this package. ``python -m bench.report compare A B`` judges run B against run A
(each a ``results.json`` or a ``baselines/<tier>.json``) and exits with status 3 when a case
regressed. ``python -m bench.report across --out DIR A B ...`` sets runs of several testbeds side
by side. The files are read by :mod:`bench.results`.

Modules, one concern each:

- :mod:`~bench.report.cli`: the command line, and :func:`write_report`.
- :mod:`~bench.report.sections`: REPORT.md as a whole, its title and its tables of numbers;
  :mod:`~bench.report.sections_diagnostics` and :mod:`~bench.report.sections_baseline`: the
  sections that explain them.
- :mod:`~bench.report.plots`: the PNG figures (the only module that imports matplotlib).
- :mod:`~bench.report.compare`: two runs judged case by case and metric by metric;
  :mod:`~bench.report.significance`: when a metric moved beyond its noise;
  :mod:`~bench.report.compare_render`: the comparison as markdown.
- :mod:`~bench.report.across`: runs of several testbeds set side by side (``across``), case by
  case and image by image; :mod:`~bench.report.across_render`: that document as ACROSS.md.
- :mod:`~bench.report.format` and :mod:`~bench.report.verdicts`: the table cells every table
  shares; :mod:`~bench.report.lookup`: looking things up in a results dict.
"""

from bench.report.cli import main, write_report

__all__ = ["main", "write_report"]
