"""The hub templates ship in the package, and the z2jh example mounts the same files."""

from __future__ import annotations

from pathlib import Path

import yaml

from jhub_gateway.hub_templates import TEMPLATE_PATH

ROOT = Path(__file__).resolve().parents[2]


def test_z2jh_example_mounts_the_packaged_templates_unchanged():
    values = yaml.safe_load((ROOT / "examples/z2jh/config.yaml").read_text())
    files = values["hub"]["extraFiles"]
    mounted = {Path(f["mountPath"]).name: f["stringData"] for f in files.values()}
    assert set(mounted) == {"page.html", "admin.html"}
    for name, text in mounted.items():
        assert text == (Path(TEMPLATE_PATH) / name).read_text(), name
    dirs = {str(Path(f["mountPath"]).parent) for f in files.values()}
    assert len(dirs) == 1
    assert dirs.pop() in values["hub"]["extraConfig"]["dask-gateway-templates"]
    assert values["hub"]["services"]["dask-gateway"]["display"] is True
