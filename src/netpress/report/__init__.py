"""Reports: tables and PNG plots. Each concern keeps its own plotting module here (e.g. ``report.lottery``)."""
from netpress.report.plots import finish_axes, new_figure, save_figure

__all__ = ["finish_axes", "new_figure", "save_figure"]
