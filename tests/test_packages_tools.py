"The tools are not yours, an image without uv gets it from the wheelhouse, the image's constraint files are kept to"
import os, sys, time, zipfile, subprocess, tomllib
from pathlib import Path
import pytest
from conftest import ROOT
from test_packages import world, VM, CLI, saved, make_wheel, manifest  # noqa: F401 (the module-scoped world)
from test_packages_settings import host_path

def installer(vm, name):
    "Which tool installed distribution `name` into the VM's image (its INSTALLER file)"
    return next(vm.base.glob(f'image/lib/python*/site-packages/{name}-*.dist-info/INSTALLER')).read_text().strip()

# --- what is yours in a venv made this session ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def tools_index(world):
    "persistlab and what it needs (its real requirement names, from pyproject.toml), wheel and uv, as tiny wheels"
    d = world['base']/'tools'; d.mkdir(exist_ok=True)
    deps = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['dependencies']
    needs = {'persistlab': deps, 'ipython': ['decorator', 'traitlets', 'plab-b; extra == "test"'], 'ipywidgets': ['traitlets'],
             'fastcore': ['packaging'], 'requests': ['urllib3', 'idna'], 'tqdm': [], 'decorator': [], 'traitlets': [], 'urllib3': [],
             'idna': [], 'packaging': [], 'wheel': [], 'uv': []}
    for n, reqs in needs.items():
        v = '99.0' if n != 'persistlab' else '0.99'
        make_wheel(d, n, v, {f'plabtool_{n}.py': ''}, requires=reqs)  # no module of the real name: nothing is shadowed
    return d

def test_a_venv_made_this_session_keeps_only_your_packages(world, tools_index, tmp_path):
    "pip, setuptools, wheel, uv, persistlab and what it needs are new in a venv made after boot: only yours are kept, and a later load says nothing"
    storage, files = tmp_path/'storage', world['index']/'files'
    vm = VM(tmp_path/'vm1', storage, world['image'])
    for f in vm.base.glob('image/lib/python*/site-packages/*.dist-info'):  # the venv was made this session, not with the image
        for g in [f, *f.iterdir()]: os.utime(g, (vm.started + 1, vm.started + 1))
    vm.pip('install', '--no-index', '--find-links', tools_index, 'persistlab', 'wheel', 'uv')
    vm.pip('install', '--no-index', '--find-links', files, '--find-links', tools_index, 'plab-b', 'plab-e')  # yours (b: also an extra of ipython's)
    r = vm.cli('--save', PIP_FIND_LINKS=f'{files} {tools_index}', PIP_NO_INDEX='1')
    (s,) = manifest(storage)['packages']['sets'].values()
    assert sorted(s['packages']) == ['plab-b', 'plab-d', 'plab-e'], (sorted(s['packages']), r.stdout)  # d: in the venv's template, new too
    assert 'tools' in r.stdout and 'not kept' in r.stdout, r.stdout
    # the next boot of the same machine: the venv is still there, older than the boot now; `%load_ext` installs nothing, says nothing
    code = "%load_ext persistlab\nprint('loaded')\nexit\n"
    r = subprocess.run([str(vm.py), '-m', 'IPython', '--no-banner', '--simple-prompt', '--colors=NoColor'], input=code, text=True,
                       capture_output=True, timeout=120, env=vm.env(PYTHONPATH=host_path(), PERSISTLAB_RUN=vm.base/'run2',
                                                                    PERSISTLAB_IMAGE_TIME=time.time(), IPYTHONDIR=vm.home/'.ipython'))
    assert 'loaded' in r.stdout and 'installed' not in r.stdout + r.stderr and 'packages' not in r.stdout, r.stdout + r.stderr

# --- an image without uv -----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def uv_index(world):
    "A folder holding a uv wheel as PyPI lays it out (the binary in the wheel's scripts), made from this machine's uv"
    from uv import find_uv_bin  # the `uv` package of the dev extra, which .ci/run installs
    b = find_uv_bin(); v = subprocess.run([b, '--version'], capture_output=True, text=True, check=True).stdout.split()[1]
    d = world['base']/'uv-index'; d.mkdir(exist_ok=True)
    with zipfile.ZipFile(d/f'uv-{v}-py3-none-manylinux_2_17_x86_64.whl', 'w') as z:  # stored: made in a blink
        z.write(b, f'uv-{v}.data/scripts/uv')
        z.writestr(f'uv-{v}.dist-info/METADATA', f'Metadata-Version: 2.1\nName: uv\nVersion: {v}\n')
        z.writestr(f'uv-{v}.dist-info/WHEEL', 'Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: py3-none-manylinux_2_17_x86_64\n')
        z.writestr(f'uv-{v}.dist-info/RECORD', '')
    return d

def no_uv(tmp_path):
    "A machine without uv: not on PATH, and no `uv` package for the Python running persistlab"
    d = tmp_path/'no-uv/uv'; d.mkdir(parents=True, exist_ok=True)
    (d/'__init__.py').write_text("raise ImportError('this image has no uv package')\n")
    return dict(PATH='/usr/bin:/bin', PYTHONPATH=f'{d.parent}:{ROOT}')

def test_an_image_without_uv_gets_it_from_the_wheelhouse(world, uv_index, tmp_path):
    "Session 1 has no uv: the save keeps uv's wheel from the index; session 2 has none either: uv is unpacked from storage and installs"
    storage, files = tmp_path/'storage', world['index']/'files'
    vm1 = VM(tmp_path/'vm1', storage, world['image'])
    vm1.pip('install', '--no-index', '--find-links', files, 'plab-a')
    r = vm1.cli('--save', PIP_FIND_LINKS=f'{files} {uv_index}', PIP_NO_INDEX='1', **no_uv(tmp_path))
    assert 'uv' in manifest(storage)['packages'], r.stdout
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    r = vm2.cli('--restore', **no_uv(tmp_path))
    assert vm2.imports('plab_a', 'plab_b') == ['a1.0', 'b1.0'], r.stdout + r.stderr
    assert installer(vm2, 'plab_a') == installer(vm2, 'plab_b') == 'uv', r.stdout
    r = vm2.cli('--restore', '--force', **no_uv(tmp_path))  # again on this machine: the uv unpacked before is used
    assert 'uv  installed' not in r.stdout, r.stdout

# --- the image's constraint files (Colab sets them for its uv) ------------------------------------------------------------

def test_the_images_constraints_are_kept_and_a_conflict_is_named(world, tmp_path):
    "UV_CONSTRAINT pins plab-b below what you saved: the rest installs with the image's uv, plab-b is named with both versions"
    vm, storage, files = saved(world, tmp_path, 'plab-b', 'plab-e')
    (tmp_path/'c').mkdir(); c, bc = tmp_path/'c/constraints.txt', tmp_path/'c/build-constraints.txt'
    c.write_text('# the image\'s packages\nplab-e>=1.0\nplab-b==0.5 ; python_version >= "3"  # pinned by the image\n')
    bc.write_text('setuptools<80\n')
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    env = dict(UV_CONSTRAINT=c, UV_BUILD_CONSTRAINT=bc, UV_SYSTEM_PYTHON='true')
    r = vm2.cli('--restore', **env)
    assert vm2.imports('plab_e') == ['e1.0'] and installer(vm2, 'plab_e') == 'uv', r.stdout
    assert vm2.run(vm2.py, '-c', 'import plab_b', check=False).returncode != 0  # refused, as the image's uv would
    line = next(l for l in r.stdout.splitlines() if l.startswith('plab-b'))
    assert 'conflict' in line and '1.0' in line and 'plab-b==0.5' in line and str(c) in line, r.stdout
    assert 'No solution' not in r.stdout + r.stderr and 'unsatisfiable' not in r.stdout + r.stderr
    r = vm2.cli('--restore', '--force', **env)  # yours over the image's pins, when asked
    assert vm2.imports('plab_b') == ['b1.0'], r.stdout
