"""A release as the workflow makes it: the sdist and wheel build, pass `twine check --strict`, hold what users need,
and the version agrees with the changelog's newest section."""
import re, sys, subprocess, tarfile, zipfile
from pathlib import Path
from conftest import ROOT

def test_sdist_and_wheel_build_and_check(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'build', '--outdir', str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    v = re.search(r'^__version__ = "(.+?)"', (ROOT/'persistlab/__init__.py').read_text(), re.M)[1]
    whl, = tmp_path.glob(f'persistlab-{v}-py3-none-any.whl'); sdist, = tmp_path.glob(f'persistlab-{v}.tar.gz')
    r = subprocess.run([sys.executable, '-m', 'twine', 'check', '--strict', str(whl), str(sdist)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.count('PASSED') == 2, r.stdout + r.stderr
    names = set(zipfile.ZipFile(whl).namelist())
    mods = {f'persistlab/{p.name}' for p in (ROOT/'persistlab').glob('*.py')} | {'persistlab/code-server.svg'}
    assert mods <= names, mods - names  # every module and the launcher icon
    meta = zipfile.ZipFile(whl).read(f'persistlab-{v}.dist-info/METADATA').decode()
    assert 'Requires-Python: >=3.10' in meta and 'Requires-Dist: ipython' in meta, meta[:2000]
    ep = zipfile.ZipFile(whl).read(f'persistlab-{v}.dist-info/entry_points.txt').decode()
    assert 'persistlab-restore = persistlab.cli:restore_cli' in ep, ep
    with tarfile.open(sdist) as t: snames = t.getnames()
    assert f'persistlab-{v}/LICENSE' in snames and f'persistlab-{v}/pyproject.toml' in snames, snames

def test_changelog_names_this_version():
    v = re.search(r'^__version__ = "(.+?)"', (ROOT/'persistlab/__init__.py').read_text(), re.M)[1]
    top = next(l for l in (ROOT/'CHANGELOG.md').read_text().splitlines() if l.startswith('## '))
    assert top.startswith(f'## {v} '), (v, top)
    wf = (ROOT/'.github/workflows/release.yml').read_text()
    assert 'id-token: write' in wf and 'pypa/gh-action-pypi-publish' in wf and 'twine check' in wf
