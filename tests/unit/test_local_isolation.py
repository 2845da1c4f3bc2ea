"""The isolation mechanism's pure parts, and the decision a non-root service makes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jhub_gateway.hub_service.backends.local import isolation
from jhub_gateway.hub_service.backends.local.accounts import Identity

ALLOCATED = Identity(234567, 234567)
ACCOUNT = Identity(1000, 1000, "jupyter-alice", "/home/jupyter-alice")


@pytest.fixture
def tree() -> Iterator[Path]:
    """A directory every user may traverse (pytest's own tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="jhub-isolation-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


def _dirs(root: Path, *parts: str, mode: int = 0o755) -> Path:
    path = root.joinpath(*parts)
    path.mkdir(parents=True)
    path.chmod(mode)
    return path


def test_directories_others_cannot_traverse_are_masked_with_their_needed_paths(tree):
    private = _dirs(tree, "private", mode=0o700)
    lib = _dirs(private, "venv", "lib")
    inner = _dirs(lib, "site-packages")  # inside lib: comes along with it
    public = _dirs(tree, "public", "bin")
    masked = isolation.masks([inner, lib, public])
    assert masked == {private: [lib]}
    assert isolation.unreachable([inner, lib, public]) == [lib, inner]


def test_a_needed_path_behind_a_closed_directory_inside_another_is_refused(tree):
    private = _dirs(tree, "private", mode=0o700)
    outer = _dirs(private, "venv")
    closed = _dirs(outer, "closed", mode=0o700)
    inner = _dirs(closed, "lib")
    with pytest.raises(
        ValueError, match=re.escape(f"cluster processes need {inner}, but it is inside {outer}")
    ):
        isolation.masks([outer, inner])


def test_reachable_paths_need_no_mask(tree):
    path = _dirs(tree, "a", "b")
    assert isolation.masks([path]) == {} and isolation.unreachable([path]) == []


def test_the_sandbox_script_hides_binds_back_and_drops_privileges(tree):
    private = _dirs(tree, "pri vate", mode=0o700)
    lib = _dirs(private, "lib")
    rundir = _dirs(tree, "run")
    script = isolation.sandbox_script({private: [lib]}, rundir, ALLOCATED)
    lines = script.splitlines()
    opened = lines.index(f"exec 3<{shlex.quote(str(lib))}")
    hidden = next(i for i, line in enumerate(lines) if line.startswith("mount -t tmpfs"))
    assert opened < hidden  # opened before the mask hides it
    assert shlex.quote(str(private)) in lines[hidden] and "nosuid,nodev" in lines[hidden]
    assert f"mount --no-canonicalize --rbind /proc/self/fd/3 {shlex.quote(str(lib))}" in lines
    assert f"cd {rundir}" in lines
    assert lines[-1].startswith("exec setpriv --reuid 234567 --regid 234567 --clear-groups ")
    assert "--no-new-privs --inh-caps=-all --bounding-set=-all" in lines[-1]
    assert "--init-groups" in isolation.sandbox_script({}, rundir, ACCOUNT).splitlines()[-1]


def test_wrapping_with_and_without_namespaces(tree):
    rundir = _dirs(tree, "run")
    cmd = ["dask", "scheduler", "--host", "127.3.0.7"]
    env: dict[str, str] = {}
    plain = isolation.wrap(cmd, env, ALLOCATED, rundir, [], pid_namespace=False)
    assert plain[:3] == ["setpriv", "--reuid=234567", "--regid=234567"]
    assert plain[-5:] == ["--", *cmd] and env == {}
    wrapped = isolation.wrap(cmd, env, ALLOCATED, rundir, [], pid_namespace=True)
    assert wrapped[:6] == ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--"]
    assert "scheduler" not in " ".join(wrapped)  # only the dropped process's cmdline names it
    assert shlex.split(env[isolation.COMMAND_VAR]) == cmd


def test_runtime_paths_cover_the_interpreter_and_packages_not_the_working_directory():
    paths = isolation.runtime_paths(["python"], os.environ.get("PATH", ""))
    real = Path(os.path.realpath(sys.executable))
    assert any(p == real.parent or p in real.parents for p in paths)
    import distributed

    assert any(p in Path(distributed.__file__).parents for p in paths)
    assert Path(os.path.realpath(os.getcwd())) not in paths  # the service's checkout


# -- not root: the decision and the warning, in a really unprivileged process ----

DECIDE = r"""
import asyncio, json, logging, os, sys
from pathlib import Path
from jhub_gateway.hub_service.backends.local.backend import LocalBackend

records = []
handler = logging.Handler()
handler.emit = lambda record: records.append(record.getMessage())
result = {"euid": os.geteuid()}
for mode in ("auto", "on"):
    backend = LocalBackend(isolation=mode)
    backend.log = logging.getLogger("decide")
    backend.log.addHandler(handler)
    try:
        asyncio.run(backend._setup_isolation(Path(sys.argv[1])))
        result[mode] = {"isolated": backend.isolated, "warnings": list(records)}
    except ValueError as exc:
        result[mode] = {"error": str(exc)}
    records.clear()
print(json.dumps(result))
"""


def test_a_service_that_is_not_root_warns_and_refuses_isolation_on(tree):
    # the suite runs as root (as CI does); the product's own sandbox drops to nobody
    assert os.geteuid() == 0
    rundir = _dirs(tree, "run")
    (rundir / "decide.py").write_text(DECIDE)
    (rundir / "decide.py").chmod(0o644)
    nobody = Identity(65534, 65534)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB", "JHUB"))}
    needed = isolation.runtime_paths(["python"], env.get("PATH", ""))
    cmd = [sys.executable, str(rundir / "decide.py"), str(rundir)]
    proc = subprocess.run(
        isolation.wrap(cmd, env, nobody, rundir, needed),
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["euid"] == 65534
    auto = result["auto"]
    assert auto["isolated"] is False
    (warning,) = auto["warnings"]
    # names the risk ...
    assert "clusters run as this service's OS user (not root)" in warning
    assert "read the service's environment and data directory" in warning
    assert "signal other users' processes" in warning
    # ... and the fix
    assert "run the service as root" in warning and "README's Security section" in warning
    assert "needs the service to run as root" in result["on"]["error"]
