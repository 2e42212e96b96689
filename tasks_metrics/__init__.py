"""Completeness checks, limits, IoU and plate metrics, the pass rule, grading processes and
overlays for the candidate test. Import the modules themselves (`tasks_metrics.metrics`, ...);
the package imports nothing, so that light users (the settings, the pass rule) stay light."""
