"""The package as a user installs it, three ways: a wheel, `pip install .` and `pip install -e .`.
Each goes into an isolated place (never `.venv`, whose own editable install of this tree must stay
as it is), then answers from an unrelated directory with the installed copy and its own configs.
The wheel also runs the digits default and takes the user's configs by search path.

Every install starts from a snapshot of this tree in tmp_path (what git would see: no `.venv`,
`build/`, egg-info or outputs), so a stale `build/lib` here never leaks into a wheel, and a
refactor going on in the tree meanwhile cannot race the build. The snapshot keeps the top-level
`conf -> coreset_lab/conf` link as a link, so each install is checked with it in place: the
configs ship inside the package as real files, and the link adds nothing (no top-level `conf`)."""

import hashlib
import os
import shutil
import site
import stat
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIP = [sys.executable, "-m", "pip", "-q"]
# --ignore-installed: `.venv` already holds coreset-lab (editable); pip must neither look at it
# nor touch it. --no-build-isolation: setuptools comes from `.venv` (no index needed).
INSTALL = [*PIP, "install", "--no-deps", "--no-build-isolation", "--ignore-installed"]
# Left out of the snapshot: at the top, the ignored and local-only paths; anywhere, byte code and
# egg-info. (`data` only at the top: coreset_lab/data is a package.)
SKIP_AT_TOP = {
    ".git",
    ".venv",
    "build",
    "dist",
    "outputs",
    "multirun",
    "wandb",
    "lightning_logs",
    "data",
    "gpu_check_out",
    ".pytest_cache",
    ".ruff_cache",
    ".ci",
}


def _snapshot(dest: Path) -> Path:
    def ignore(folder, names):
        top = Path(folder) == ROOT
        return [
            n
            for n in names
            if n == "__pycache__" or n.endswith(".egg-info") or (top and n in SKIP_AT_TOP)
        ]

    shutil.copytree(ROOT, dest, symlinks=True, ignore=ignore)
    assert (dest / "conf").is_symlink(), "the snapshot must keep the conf link"
    return dest


def _env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1", **extra}
    env.pop("HYDRA_FULL_ERROR", None)
    if "PYTHONPATH" not in extra:
        env.pop("PYTHONPATH", None)
    return env


def _conf_files(conf: Path) -> set[str]:
    return {p.relative_to(conf).as_posix() for p in conf.rglob("*.yaml")}


def _groups(conf: Path) -> list[str]:
    """The app's config groups as its --help lists them (Hydra's own are not listed)."""
    return sorted(
        d.relative_to(conf).as_posix()
        for d in conf.rglob("*")
        if d.is_dir()
        and d.name != "hydra"
        and "hydra" not in d.relative_to(conf).parts
        and any(d.glob("*.yaml"))
    )


def _check_install(python: str, env: dict, elsewhere: Path, home: Path, tree: Path):
    """From `elsewhere`, `coreset_lab` is the copy under `home`, its configs are real files, every
    config group is in --help, and the link did not turn into an importable top-level `conf`."""
    elsewhere.mkdir(exist_ok=True)
    probe = (
        "import importlib.util, coreset_lab; print(coreset_lab.__file__);"
        " print(importlib.util.find_spec('conf'))"
    )
    out = subprocess.run(
        [python, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    where, conf_spec = out.stdout.split()
    package = Path(where).parent
    assert package == home / "coreset_lab", where  # the installed copy, not this tree
    assert conf_spec == "None", "the top-level conf link must not be installed as a package"
    conf = package / "conf"
    config = conf / "config.yaml"
    assert config.is_file() and not config.is_symlink()
    assert Path(os.path.realpath(config)) == config, "a link on the way to config.yaml"
    assert _conf_files(conf) == _conf_files(tree / "coreset_lab" / "conf")
    assert not any(p.is_symlink() for p in conf.rglob("*"))
    help_ = subprocess.run(
        [python, "-m", "coreset_lab", "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert help_.returncode == 0, help_.stderr[-2000:]
    listed = {line.split(":")[0] for line in help_.stdout.splitlines() if ": " in line}
    assert "experiment" in listed, help_.stdout[:2000]
    assert set(_groups(conf)) <= listed, help_.stdout[:2000]
    return help_


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One wheel from a snapshot of the tree, shared by the tests here."""
    base = tmp_path_factory.mktemp("wheel")
    tree = _snapshot(base / "tree")
    wheels = base / "whl"
    build = [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(tree)]
    subprocess.run(build, check=True, cwd=base)
    [wheel] = wheels.glob("coreset_lab-*.whl")
    return wheel, tree


def test_the_top_level_conf_is_a_relative_link_to_the_packaged_configs():
    link = ROOT / "conf"
    assert link.is_symlink()
    assert os.readlink(link) == "coreset_lab/conf"  # relative: the checkout can move
    assert link.resolve() == (ROOT / "coreset_lab" / "conf").resolve()
    assert (link / "config.yaml").is_file()


@pytest.mark.slow
def test_the_wheel_holds_the_configs_once_as_real_files(built):
    wheel, tree = built
    with zipfile.ZipFile(wheel) as z:
        infos = z.infolist()
    names = {i.filename for i in infos}
    tops = {n.split("/")[0] for n in names}
    assert tops == {"coreset_lab", "coreset_lab-0.1.0.dist-info"}, tops  # no top-level conf/
    links = [i.filename for i in infos if stat.S_ISLNK(i.external_attr >> 16)]
    assert not links, links
    prefix = "coreset_lab/conf/"
    packaged = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
    assert "config.yaml" in packaged
    assert packaged == _conf_files(tree / "coreset_lab" / "conf")  # every group's YAMLs, once
    assert all(i.file_size > 0 for i in infos if i.filename.endswith(".yaml"))


@pytest.mark.slow
def test_a_wheel_runs_from_anywhere_with_user_configs(built, tmp_path):
    wheel, tree = built
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    subprocess.run([*INSTALL, "--target", str(target), str(wheel)], check=True)
    env = _env(PYTHONPATH=str(target))
    _check_install(sys.executable, env, elsewhere, target, tree)

    script = subprocess.run(  # the console script: coreset_lab.app.cli:main
        [str(target / "bin" / "coreset-lab"), "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert script.returncode == 0 and "experiment: " in script.stdout, script.stderr[-2000:]

    def cli(*args):
        cmd = [sys.executable, "-m", "coreset_lab", *args]
        return subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True)

    run = cli("trainer=debug", "logger=none")
    assert run.returncode == 0, run.stderr[-2000:]
    assert list((elsewhere / "outputs" / "runs").rglob("results.json"))
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\nseed: 7\ntask_name: mine\n")
    cfg = cli(
        f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "experiment=mine", "--cfg", "job"
    )
    assert cfg.returncode == 0, cfg.stderr[-2000:]
    assert "seed: 7" in cfg.stdout and "task_name: mine" in cfg.stdout


@pytest.mark.slow
def test_pip_install_dot_runs_from_anywhere(tmp_path):
    tree = _snapshot(tmp_path / "tree")
    target = tmp_path / "site"
    subprocess.run([*INSTALL, "--target", str(target), str(tree)], check=True, cwd=tree)
    assert sorted(p.name for p in target.iterdir()) == [
        "bin",
        "coreset_lab",
        "coreset_lab-0.1.0.dist-info",
    ]
    _check_install(
        sys.executable, _env(PYTHONPATH=str(target)), tmp_path / "elsewhere", target, tree
    )


def _venv_editables() -> dict[str, str]:
    """Digest of `.venv`'s own editable install of this tree (finder, .pth, dist-info)."""
    found = {}
    for sp in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]}:
        for p in Path(sp).glob("*coreset_lab*"):
            for f in [p] if p.is_file() else sorted(p.rglob("*")):
                if f.is_file():
                    found[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return found


@pytest.mark.slow
def test_an_editable_install_runs_from_anywhere(tmp_path):
    """`pip install -e` of a snapshot into a bare venv's site-packages (its .pth must be read at
    start, which PYTHONPATH would not do); a second .pth there lends it `.venv`'s dependencies
    without reading `.venv`'s own .pth files, so `.venv`'s editable install stays out of it."""
    before = _venv_editables()
    tree = _snapshot(tmp_path / "tree")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    where = [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    purelib = Path(subprocess.run(where, check=True, capture_output=True, text=True).stdout.strip())
    deps = sorted({*site.getsitepackages(), sysconfig.get_paths()["purelib"]})
    (purelib / "zz_coreset_lab_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    subprocess.run([*INSTALL, "--target", str(purelib), "-e", str(tree)], check=True, cwd=tree)
    _check_install(python, _env(), tmp_path / "elsewhere", tree, tree)
    # Edits to the source tree show through without reinstalling: it is editable.
    extra = tree / "coreset_lab" / "conf" / "experiment" / "zz_editable_probe.yaml"
    extra.write_text("# @package _global_\ntask_name: probe\n")
    cfg = subprocess.run(
        [python, "-m", "coreset_lab", "experiment=zz_editable_probe", "--cfg", "job"],
        cwd=tmp_path / "elsewhere",
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert cfg.returncode == 0 and "task_name: probe" in cfg.stdout, cfg.stderr[-2000:]
    assert _venv_editables() == before, "the editable install must leave .venv's own alone"
