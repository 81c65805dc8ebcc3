"""persistlab on each platform's own Python stack (tests/data/stacks): a fresh environment pinned to the stack, `pip install`
of this checkout with the stack's pip must change none of its packages, then a journey in a real IPython on that stack.
Colab's uv, with its constraint variables set, must install it too."""
import os, sys, shutil, subprocess, textwrap, threading
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
import pytest
from conftest import ROOT, start_sshd, WAIT_FOR_CLIENT
from stacks import NAMES, read_stack, interpreter, run_cache, clean_env, make_env, freeze, changed, uv, norm

@pytest.fixture(scope='session')
def cache(): return run_cache()  # one pip and one uv cache for the whole run: each wheel is downloaded once

@pytest.fixture(scope='session')
def checkout(tmp_path_factory):
    "A copy of the checkout as a user's `pip install .` sees it (no build/ or egg-info left in the worktree)"
    d = tmp_path_factory.mktemp('checkout')/'persistlab'; d.mkdir()
    for f in ('pyproject.toml', 'README.md', 'LICENSE'): shutil.copy(ROOT/f, d/f)
    shutil.copytree(ROOT/'persistlab', d/'persistlab', ignore=shutil.ignore_patterns('__pycache__'))
    return d

def stack_env(name, base, cache):
    s = read_stack(name)
    if interpreter(s.python) is None: pytest.skip(f'no Python {s.python} on this machine (pyenv)')
    return s, make_env(s, Path(base)/name, cache)

def pip_install(python, what, cache, *args):
    "`pip install WHAT` with the environment's own pip, as the platform's user types it"
    r = subprocess.run([str(python), '-m', 'pip', 'install', '-q', *args, str(what)], env=clean_env(**cache),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r

SMOKE1 = '''
import os, stat, pathlib
from IPython import version_info
%load_ext persistlab
home = pathlib.Path.home()
(home/'.local/bin').mkdir(parents=True)
(home/'.local/bin/kept').write_text('#!/bin/sh\\necho kept-ran\\n'); os.chmod(home/'.local/bin/kept', 0o755)
%sshsetup --no-check
assert stat.S_IMODE(os.stat(home/'.ssh/id_ed25519').st_mode) == 0o600
%persist .local .ssh
r = %persist --list
print('LIST', sorted((x[0], x[1]) for x in r))
f = %persistlab
assert f.widget.children and f.tabs.get_title(0) == 'Persist', f.widget
print('SMOKE1-OK IPython', version_info[:2])
'''

SMOKE2 = '''
import os, stat, pathlib, subprocess, requests
%load_ext persistlab
%persist -r
home = pathlib.Path.home()
print('RAN', subprocess.run([str(home/'.local/bin/kept')], capture_output=True, text=True).stdout.strip())
assert stat.S_IMODE(os.stat(home/'.ssh/id_ed25519').st_mode) == 0o600
info = %tunnel {web} -p ssh://root@127.0.0.1:{sshd}
host, port = info.url.split(':')
print('GOT', requests.get(f'http://127.0.0.1:{{port}}/', timeout=10).text)
%tunnel --stop all
print('SMOKE2-OK')
'''

def ipython(python, script, home, base, **env):
    "Run `script` as a .ipy file in a real IPython of the environment (the installed persistlab, not this checkout)"
    f = Path(base)/f'cell-{home.name}.ipy'; f.write_text(textwrap.dedent(script))
    bindir = Path(python).parent
    e = clean_env(HOME=home, PATH=f'{bindir}:{os.environ["PATH"]}', IPYTHONDIR=home/'.ipython', TMPDIR=base,
                  XDG_CONFIG_HOME=home/'.config', XDG_DATA_HOME=home/'.local/share', XDG_CACHE_HOME=Path(base)/'cache',
                  JUPYTER_RUNTIME_DIR=Path(base)/'jrt', **env)
    r = subprocess.run([str(python), '-m', 'IPython', '--quick', '--no-banner', '--colors=NoColor', str(f)], env=e,
                       capture_output=True, text=True, timeout=180, cwd=base)
    return r.stdout + r.stderr

@pytest.mark.parametrize('name', NAMES)
def test_install_changes_nothing_and_the_journey_runs(name, tmp_path, cache, checkout):
    stack, py = stack_env(name, tmp_path, cache)
    before = freeze(py)
    assert {n: before.get(n) for n in stack.pins} == stack.pins  # the environment is the stack
    r = pip_install(py, checkout, cache)
    after = freeze(py)
    assert not changed(before, after), f'installing persistlab on {name} replaced its packages: {changed(before, after)}\n{r.stdout}'
    assert 'persistlab' in after
    r = subprocess.run([str(py), '-m', 'pip', 'check'], capture_output=True, text=True, env=clean_env())
    assert 'persistlab' not in r.stdout, r.stdout  # on Colab: google-colab's own ipython==7.34.0, ipykernel==6.17.1 hold too
    scripts = ('persistlab-persist', 'persistlab-restore', 'persistlab-status', 'persistlab-packages', 'persistlab-doctor', 'persistlab-connect')
    ps = {s: subprocess.Popen([str(Path(py).parent/s), '--help'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env())
          for s in scripts}  # at once: each is a Python start
    for s, p in ps.items():
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0 and 'usage:' in out, f'{s} on {name}: {out}'  # (Kaggle's fastcore 1.14.5 once broke them all)

    st, home1, home2 = tmp_path/'storage', tmp_path/'home1', tmp_path/'home2'
    for d in (st, home1, home2): d.mkdir()
    env = dict(PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=st, PERSISTLAB_RUNTIME=tmp_path/'rt', PERSISTLAB_RUN=tmp_path/'run')
    out = ipython(py, SMOKE1, home1, tmp_path, **env)
    assert 'SMOKE1-OK' in out and 'Traceback' not in out, out
    assert "LIST [('.local', 'linked'), ('.ssh', 'copied')]" in out, out

    www = tmp_path/'www'; www.mkdir(); (www/'index.html').write_text('hello through the tunnel')
    class Q(SimpleHTTPRequestHandler):
        def __init__(s, *a, **k): super().__init__(*a, directory=str(www), **k)
        def log_message(s, *a): pass
    srv = ThreadingHTTPServer(('127.0.0.1', 0), Q); threading.Thread(target=srv.serve_forever, daemon=True).start()
    sshd, port, _, _ = start_sshd(tmp_path/'sshd', WAIT_FOR_CLIENT, authorized=(home1/'.ssh/id_ed25519.pub').read_text())
    try:
        out = ipython(py, SMOKE2.format(web=srv.server_port, sshd=port), home2, tmp_path, **env)  # a fresh home: restored
    finally:
        sshd.terminate(); sshd.wait(10); srv.shutdown()
        subprocess.run([str(py), '-c', 'from persistlab import procs; procs.stop_all()'], env=clean_env(**env, HOME=home2))
    assert 'RAN kept-ran' in out and 'GOT hello through the tunnel' in out and 'SMOKE2-OK' in out and 'Traceback' not in out, out

def test_colab_uv_under_the_images_constraints(tmp_path, cache, checkout):
    "Colab's uv has UV_CONSTRAINT and UV_BUILD_CONSTRAINT set to the image's pins: `uv pip install` resolves and changes nothing"
    stack, py = stack_env('colab', tmp_path, cache)
    cons = tmp_path/'requirements.constraints'; cons.write_text('\n'.join(f'{n}=={v}' for n, v in freeze(py).items()) + '\n')
    before = freeze(py)
    # UV_SYSTEM_PYTHON=true makes uv use the image's own Python; here that Python is the stack's environment, named with --python
    r = subprocess.run([uv(), 'pip', 'install', '--python', str(py), str(checkout)], capture_output=True, text=True, timeout=600,
                       env=clean_env(UV_CONSTRAINT=cons, UV_BUILD_CONSTRAINT=cons, **cache))
    assert r.returncode == 0, r.stderr
    assert not changed(before, freeze(py)) and 'persistlab' in freeze(py)

# --- replicas on the platform's own Python ------------------------------------------------------------------------------

@pytest.mark.parametrize('platform', ['colab', 'kaggle'])
def test_replicas_run_the_platforms_python(replica, platform):
    "A Colab VM's kernel is Python 3.13 with IPython 7.34 and ipywidgets 7.7.1 as the image's own packages; Kaggle's 3.12"
    s = read_stack(platform)
    vm = replica(platform)
    c = vm.run_cell('import sys, IPython, ipywidgets, fastcore, site\n'
                    'print("RUNS", sys.version_info[:2], IPython.__version__, ipywidgets.__version__, fastcore.__version__)\n'
                    'print("SITE", ipywidgets.__file__.startswith(tuple(site.getsitepackages())))')
    want = (tuple(map(int, s.python.split('.'))), s.pins['ipython'], s.pins['ipywidgets'], s.pins['fastcore'])
    assert c.ok and f'RUNS {want[0]} {want[1]} {want[2]} {want[3]}' in c.out and 'SITE True' in c.out, c

@pytest.fixture(scope='session')
def checkout_wheel(checkout, cache):
    "The checkout as the wheel `pip install persistlab` would fetch"
    d = checkout.parent/'dist'
    subprocess.run([uv(), 'build', '-q', '--wheel', '-o', str(d), str(checkout)], check=True, env=clean_env(**cache), capture_output=True)
    return next(d.glob('persistlab-*.whl'))

def test_colab_bootstrap_cell_right_after_pip_install_in_the_same_kernel(replica, checkout_wheel):
    "The one-cell bootstrap as the docs print it, on Colab's stack: `!pip install` adds persistlab only, the same kernel goes on"
    from replicas import doc_cell
    cell = doc_cell('30_bootstrap.ipynb', '!pip install')
    vm = replica('colab', checkout=False)  # persistlab comes from the pip install, nothing else: pip has no index here
    shutil.copy(checkout_wheel, vm.wheelhouse)
    cs = vm.run(['import IPython; print("BEFORE", IPython.__version__)', cell,
                 'from importlib import metadata; import IPython, persistlab\n'
                 'print("AFTER", IPython.__version__, metadata.version("ipython"), metadata.version("ipywidgets"), persistlab.__file__)'])
    assert all(c.ok for c in cs), '\n'.join(map(repr, cs))
    assert 'BEFORE 7.34.0' in cs[0].out, cs[0]
    assert 'AFTER 7.34.0 7.34.0 7.7.1 ' in cs[2].out and str(vm.python.parent.parent) in cs[2].out, cs[2]  # the image's site
    assert 'Mounted at /content/drive' in cs[1].out and (vm.drive/'MyDrive/persistlab/snapshots').is_dir(), cs[1]

def test_every_stack_meets_the_floors_and_the_readme_says_them():
    "Each requirement's floor is met by every stack that has the package (fast: no install), and the README names the floors"
    import tomllib
    from packaging.requirements import Requirement
    deps = [Requirement(d) for d in tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['dependencies']]
    for name in NAMES:
        s = read_stack(name)
        for r in deps:
            if norm(r.name) in s.pins: assert r.specifier.contains(s.pins[norm(r.name)]), f'{name} has {r.name} {s.pins[norm(r.name)]}: {r}'
    readme = (ROOT/'README.md').read_text()
    for r in deps:
        if r.specifier: assert f'`{r}`' in readme, f'README.md does not state the requirement {r}'

@pytest.mark.parametrize('version', ['3.12', '3.13'])
def test_a_moved_venv_of_the_platforms_python_is_fixed(version, tmp_path):
    "Python 3.12+ writes `export VIRTUAL_ENV=...` in activate (indented): fix_venv still finds where the venv was"
    from persistlab.packages import fix_venv
    py = interpreter(version)
    if py is None: pytest.skip(f'no Python {version} on this machine (pyenv)')
    a, b = tmp_path/'a', tmp_path/'b'
    subprocess.run([str(py), '-m', 'venv', '--without-pip', str(a)], check=True)
    (a/'bin/hello').write_text(f'#!{a}/bin/python\nimport sys; print("hello from", sys.prefix)\n'); (a/'bin/hello').chmod(0o755)
    os.rename(a, b)
    fix_venv(b)
    assert subprocess.run([str(b/'bin/hello')], capture_output=True, text=True).stdout == f'hello from {b}\n'

def test_kaggle_packages_journey_on_kaggles_stack(replica):
    "Kaggle's Python 3.12 with its pins: `!pip install`, `%persist --packages`; the next session's `%load_ext` installs them back"
    import time
    from replicas import wheel
    vm1 = replica('kaggle', env=dict(PERSISTLAB_IMAGE_TIME=time.time()))  # the VM starts now: the image's packages are older
    wheel(vm1.wheelhouse, 'ktool', x=7)
    c1, c2 = vm1.run(['!pip install -q ktool', '%load_ext persistlab\n%persist --packages'])
    assert c1.ok and c2.ok and 'ktool' in c2.out, (c1, c2)
    assert 'ipython' not in c2.out.lower() and 'fastcore' not in c2.out, c2  # the image's packages are not the user's
    vm1.close()
    vm2 = replica('kaggle', env=dict(PERSISTLAB_IMAGE_TIME=time.time()))  # the next session: same /kaggle/working, no index
    c1, c2 = vm2.run(['%load_ext persistlab', 'import ktool, sys; print("X", ktool.X, sys.version_info[:2])'])
    assert c1.ok and c2.ok and 'X 7 (3, 12)' in c2.out, (c1, c2)
