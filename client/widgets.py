"""Optional notebook widgets; everything here degrades to None without ipywidgets."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable
from typing import Any

import yaml

log = logging.getLogger("jhub_gateway.client")


def _input_for(ipw: Any, field: Any) -> Any:
    kind = field.type_name
    if kind == "bool":
        return ipw.Checkbox(value=field.value, indent=False)
    if kind == "select":
        return ipw.Dropdown(value=field.value, options=list(field.options))
    if kind in ("int", "float"):
        bounded = field.min is not None or field.max is not None
        if kind == "int":
            if not bounded:
                return ipw.IntText(value=field.value)
            lo = -(2**63) if field.min is None else field.min
            hi = 2**63 - 1 if field.max is None else field.max
            return ipw.BoundedIntText(value=field.value, min=lo, max=hi)
        if not bounded:
            return ipw.FloatText(value=field.value)
        lo = float("-inf") if field.min is None else field.min
        hi = float("inf") if field.max is None else field.max
        return ipw.BoundedFloatText(value=field.value, min=lo, max=hi)
    if kind == "mapping":
        text = yaml.safe_dump(field.value) if field.value else ""
        return ipw.Textarea(value=text, placeholder="YAML or JSON", continuous_update=False)
    return ipw.Text(value=str(field.value), continuous_update=False)


def options_form(fields: Iterable[Any]) -> Any:
    """A grid of label / input / error cells, writing valid input back to the fields."""
    try:
        import ipywidgets as ipw
    except ImportError:
        return None
    cells: list[Any] = []
    for field in fields:
        widget = _input_for(ipw, field)
        status = ipw.HTML("")

        def on_change(change: Any, field: Any = field, status: Any = status) -> None:
            value = change["new"]
            try:
                if field.type_name == "mapping":
                    value = yaml.safe_load(value) if value.strip() else {}
                field.set(value)
                status.value = ""
            except Exception as exc:  # noqa: BLE001 - any parse/validation error is shown inline
                status.value = f"<span title='{html.escape(str(exc))}'>&#10060;</span>"

        widget.observe(on_change, "value")
        label = ipw.HTML(f"<b>{html.escape(field.label)}:</b>")
        cells.extend([label, widget, status])
    grid = ipw.GridBox(
        cells, layout=ipw.Layout(grid_template_columns="auto auto auto", grid_gap="4px 8px")
    )
    return ipw.VBox([ipw.HTML("<h3>Cluster options</h3>"), grid])


def cluster_widget(cluster: Any) -> Any:
    """Scale/adapt controls and status for a GatewayCluster, or None."""
    try:
        import ipywidgets as ipw
    except ImportError:
        return None
    status = ipw.HTML(cluster._status_html())
    count = ipw.IntText(0, description="Workers")
    scale = ipw.Button(description="Scale")
    minimum = ipw.IntText(0, description="Minimum")
    maximum = ipw.IntText(0, description="Maximum")
    adapt = ipw.Button(description="Adapt")

    def on_scale(_: Any) -> None:
        try:
            cluster.scale(count.value)
        except Exception:
            log.exception("Scaling from the widget failed")

    def on_adapt(_: Any) -> None:
        try:
            cluster.adapt(minimum=minimum.value, maximum=maximum.value)
        except Exception:
            log.exception("Enabling adaptive scaling from the widget failed")

    scale.on_click(on_scale)
    adapt.on_click(on_adapt)
    controls = ipw.Accordion([ipw.HBox([count, scale]), ipw.HBox([minimum, maximum, adapt])])
    controls.set_title(0, "Manual scaling")
    controls.set_title(1, "Adaptive scaling")
    controls.selected_index = None
    box = ipw.VBox([ipw.HTML(cluster._repr_html_()), ipw.HBox([status, controls])])
    return box, status
