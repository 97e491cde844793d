"""Reports: tables and PNG plots. Each concern keeps its own plotting module here (e.g. ``report.lottery``)."""
from netpress.report.plots import new_figure, save_figure

__all__ = ["new_figure", "save_figure"]
