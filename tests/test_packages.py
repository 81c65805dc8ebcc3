"Packages that survive: real pip and uv, wheels built here, a PEP 503 index on 127.0.0.1, an image venv as root"
import os, sys, json, time, base64, shutil, signal, hashlib, tarfile, zipfile, tomllib, subprocess, textwrap
from pathlib import Path
import pytest
from conftest import ROOT, Sandbox

_CODE = []
def code_path() -> str:
    """A folder holding only this checkout's package, for PYTHONPATH: the checkout itself may hold a build's
    persistlab.egg-info (`pip install -e .` leaves one), a second `persistlab` distribution older than the VM's"""
    if not _CODE:
        import tempfile
        d = Path(tempfile.mkdtemp(prefix='persistlab-code-')); (d/'persistlab').symlink_to(ROOT/'persistlab'); _CODE.append(d)
    return str(_CODE[0])

IMAGE_TIME = 1_600_000_000  # 2020: the image's files are older than this machine, as on a real VM image

# --- tiny distributions, built here --------------------------------------------------------------------------------

def _record_line(name, data):
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
    return f'{name},sha256={h},{len(data)}'

WHEEL_CODE = '''
def make_wheel(dest, name, version, files, requires=(), tag='py3-none-any'):
    import base64, hashlib, zipfile, os
    mod = name.replace('-', '_')
    di = f'{mod}-{version}.dist-info'
    files = dict(files)
    files[f'{di}/METADATA'] = 'Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n' % (name, version) + ''.join(f'Requires-Dist: {r}\\n' for r in requires)
    files[f'{di}/WHEEL'] = f'Wheel-Version: 1.0\\nGenerator: persistlab-test\\nRoot-Is-Purelib: true\\nTag: {tag}\\n'
    rec = []
    path = os.path.join(dest, f'{mod}-{version}-{tag}.whl')
    with zipfile.ZipFile(path, 'w') as z:
        for n, t in files.items():
            b = t if isinstance(t, bytes) else t.encode()
            z.writestr(n, b)
            h = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()
            rec.append(f'{n},sha256={h},{len(b)}')
        z.writestr(f'{di}/RECORD', '\\n'.join(rec + [f'{di}/RECORD,,']) + '\\n')
    return os.path.basename(path)
'''
exec(WHEEL_CODE)

def make_sdist(dest, name, version, body, fail=None, fail_at='build'):
    "An sdist whose in-tree PEP 517 backend builds the wheel (no setuptools, no index); `fail` makes `fail_at` fail ('build', 'requires')"
    mod = name.replace('-', '_'); root = f"{mod}-{version}"
    build = f'    raise RuntimeError({fail!r})\n' if fail else \
            f'    return make_wheel(wheel_directory, {name!r}, {version!r}, {{"{mod}/__init__.py": {body!r}}})\n'
    requires = f'raise RuntimeError({fail!r})' if fail and fail_at == 'requires' else 'return []'
    backend = WHEEL_CODE + textwrap.dedent(f'''
    def get_requires_for_build_wheel(config_settings=None): {requires}
    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    ''') + build
    files = {'pyproject.toml': '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
             'backend.py': backend, 'PKG-INFO': f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n'}
    path = Path(dest)/f'{root}.tar.gz'
    with tarfile.open(path, 'w:gz') as t:
        for n, text in files.items():
            b = text.encode(); ti = tarfile.TarInfo(f'{root}/{n}'); ti.size = len(b); ti.mtime = time.time()
            import io; t.addfile(ti, io.BytesIO(b))
    return path.name

def write_index(root):
    "A PEP 503 simple index over the files in root/files"
    files = sorted((root/'files').iterdir())
    by = {}
    for f in files:
        n = f.name.split('-')[0].replace('_', '-').lower()
        by.setdefault(n, []).append(f)
    (root/'simple').mkdir(exist_ok=True)
    (root/'simple/index.html').write_text(''.join(f'<a href="{n}/">{n}</a>\n' for n in by))
    for n, fs in by.items():
        (root/'simple'/n).mkdir(exist_ok=True)
        links = ''.join(f'<a href="../../files/{f.name}#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}">{f.name}</a>\n' for f in fs)
        (root/'simple'/n/'index.html').write_text(f'<!DOCTYPE html><html><body>\n{links}</body></html>\n')

class Index:
    "python -m http.server over a simple/ tree on a free 127.0.0.1 port"
    def __init__(self, root):
        from persistlab.procs import free_port
        self.root, self.port = Path(root), free_port()
        write_index(self.root)
        self.p = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1', str(self.port), '--directory', str(root)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        import socket
        for _ in range(100):
            try: socket.create_connection(('127.0.0.1', self.port), timeout=0.2).close(); break
            except OSError: time.sleep(0.05)
        self.url = f'http://127.0.0.1:{self.port}/simple'
    def stop(self):
        if self.p.poll() is None: os.killpg(self.p.pid, signal.SIGTERM); self.p.wait(10)

# --- the world: an image (a venv whose files predate the machine), fresh VMs from it ---------------------------------

def backdate(venv):
    "Make every installed distribution look like part of the image"
    for d in Path(venv).glob('lib/python*/site-packages/*.dist-info'):
        for f in [d, *d.iterdir()]: os.utime(f, (IMAGE_TIME, IMAGE_TIME))

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp('pkgworld')
    files = base/'index/files'; files.mkdir(parents=True)
    make_wheel(files, 'plab-a', '1.0', {'plab_a/__init__.py': 'import plab_b\nv = "a1.0"\n'}, requires=['plab-b'])
    make_wheel(files, 'plab-a', '0.9', {'plab_a/__init__.py': 'v = "a0.9"\n'})
    make_wheel(files, 'plab-b', '1.0', {'plab_b/__init__.py': 'v = "b1.0"\n'})
    make_sdist(files, 'plab-c', '1.0', 'v = "c1.0"  # built from its sdist\n')
    make_wheel(files, 'plab-d', '1.0', {'plab_d/__init__.py': 'v = "d1.0"\n'})
    make_wheel(files, 'plab-d', '2.0', {'plab_d/__init__.py': 'v = "d2.0"\n', 'plab_d_extra.pth': 'import sys; sys.plab_d_pth = True\n'})
    make_wheel(files, 'plab-e', '1.0', {'plab_e/__init__.py': 'v = "e1.0"\n'})
    make_sdist(files, 'plab-bad', '1.0', '', fail='this package needs a Fortran compiler')
    make_sdist(files, 'plab-broken', '0.3', '', fail='this package needs a Fortran compiler', fail_at='requires')
    local = base/'local-wheels'; local.mkdir()  # a wheel the user had on disk; the index only has its sdist
    make_wheel(local, 'plab-bad', '1.0', {'plab_bad/__init__.py': 'v = 1\n'})
    make_wheel(local, 'plab-broken', '0.3', {'plab_broken/__init__.py': 'v = 1\n'})
    make_wheel(local, 'plab-f', '1.0', {'plab_f/__init__.py': 'v = "f1.0"\n'}, tag='cp311-none-any')  # for CPython 3.11 only
    make_wheel(local, 'plab-big', '1.0', {'plab_big/__init__.py': 'v = 1\n', 'plab_big/data.bin': os.urandom(3 << 20)})
    image = base/'image-template'
    subprocess.run([sys.executable, '-m', 'venv', str(image)], check=True)
    subprocess.run([str(image/'bin/python'), '-m', 'pip', 'install', '-q', '--no-index', '--find-links', str(files), 'plab-d==1.0'],
                   check=True, env={**os.environ, 'PIP_CONFIG_FILE': os.devnull})
    backdate(image)
    return dict(base=base, index=base/'index', local=local, image=image)

class VM(Sandbox):
    "A fresh machine from the image: a new home, TMPDIR and image copy at one path, the same storage"
    def __init__(self, base, storage, image):
        self.base = Path(base); self.home, self.storage = self.base/'home', Path(storage)
        self.home.mkdir(parents=True); self.storage.mkdir(parents=True, exist_ok=True)
        self.py = self.base/'image/bin/python'
        subprocess.run(['cp', '-a', str(image), str(self.base/'image')], check=True)
        self.started = time.time()  # this machine boots now: the image's files (and this machine's uv) are older
    def env(self, home=None, **kw):
        e = super().env(home, **kw)
        e.update(PYTHONPATH=code_path(), PIP_CONFIG_FILE=os.devnull, PIP_RETRIES='1', PIP_TIMEOUT='3', PIP_DISABLE_PIP_VERSION_CHECK='1',
                 PATH=f"{Path(sys.executable).parent}:{e['PATH']}", UV_CACHE_DIR=str(self.base/'cache/uv'), UV_NO_PROGRESS='1',
                 PERSISTLAB_RUN=str(self.base/'run'), PERSISTLAB_IMAGE_TIME=str(self.started))  # this VM's /run, its boot
        e.update({k: str(v) for k, v in kw.items()})
        return e
    def pip(self, *args, **kw): return self.run(self.py, '-m', 'pip', *args, **kw)
    def cli(self, *args, check=True, **kw):
        return self.run(sys.executable, CLI, *args,
                        '--python', self.py, '--to', self.storage, check=check, **kw)
    def imports(self, *mods):
        r = self.run(self.py, '-c', f'import {", ".join(mods)}; print(" ".join(m.v for m in ({", ".join(mods)},)))')
        return r.stdout.split()

CLI = Path(__file__).resolve().parent/'standins'/'packages_cli.py'  # run as a file: fastcore parses argv only there

def manifest(storage): return json.loads((Path(storage)/'persistlab.json').read_text())

def saved(world, tmp_path, *names):
    "Session 1: a VM of the image installs `names` from the local wheels and saves them; (vm, storage, the wheels' folder)"
    storage, files = tmp_path/'storage', world['index']/'files'
    vm = VM(tmp_path/'vm1', storage, world['image'])
    vm.pip('install', '--no-index', '--find-links', files, *names)
    vm.cli('--save', PIP_FIND_LINKS=files, PIP_NO_INDEX='1')
    return vm, storage, files

def kernel_prints(sb, name, code):
    "What kernel `name` (from the sandbox's Jupyter path) prints for `code`: the kernel a notebook would start"
    run = ("import sys\nfrom jupyter_client.manager import start_new_kernel\n"
           f"km, kc = start_new_kernel(kernel_name={name!r})\n"
           f"try: kc.execute_interactive({code!r}, timeout=60)\n"
           "finally: kc.stop_channels(); km.shutdown_kernel(now=True)\n")
    return sb.run(sys.executable, '-c', run, JUPYTER_PATH=sb.home/'.local/share/jupyter').stdout

# --- journeys --------------------------------------------------------------------------------------------------------

def test_save_then_restore_on_fresh_vms_with_the_index_gone(world, tmp_path):
    "Session 1 installs (a wheel, its dependency, an sdist, an upgraded image package) and saves; later VMs restore offline"
    storage, idx = tmp_path/'drive/persistlab', Index(world['index'])
    try:
        vm1 = VM(tmp_path/'vm1', storage, world['image'])
        vm1.pip('install', '--index-url', idx.url, 'plab-a', 'plab-c', 'plab-d==2.0')
        assert vm1.imports('plab_a', 'plab_b', 'plab_c', 'plab_d') == ['a1.0', 'b1.0', 'c1.0', 'd2.0']
        r = vm1.cli('--save', PIP_INDEX_URL=idx.url)
        assert 'saved' in r.stdout, r.stdout
    finally: idx.stop()
    rec = manifest(storage)['packages']['sets']
    (tag, s), = rec.items()
    assert sorted(s['packages']) == ['plab-a', 'plab-b', 'plab-c', 'plab-d'], s  # pip, setuptools: the image's, not recorded
    wh = storage/'wheelhouse'/tag
    assert sorted(f.name for f in wh.glob('*.whl')) == sorted(r['wheel'] for r in s['packages'].values())
    # session 2: a fresh VM from the same image, the index stopped; uv installs (UV_CONSTRAINT as Colab sets it is ignored)
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    (tmp_path/'constraints.txt').write_text('plab-d==1.0\n')
    r = vm2.cli('--restore', UV_CONSTRAINT=tmp_path/'constraints.txt', UV_SYSTEM_PYTHON='true')
    assert 'conflict' in r.stdout and 'plab-d' in r.stdout, r.stdout  # the image has d 1.0: explained, not forced
    assert vm2.imports('plab_a', 'plab_b', 'plab_c', 'plab_d') == ['a1.0', 'b1.0', 'c1.0', 'd1.0']
    assert next(vm2.base.glob('image/lib/python*/site-packages/plab_a-1.0.dist-info/INSTALLER')).read_text().strip() == 'uv'
    r = vm2.cli('--restore', '--force')
    assert vm2.imports('plab_d') == ['d2.0']
    assert 'already installed' in r.stdout and 'image  changed' not in r.stdout, r.stdout  # the same image, recognised
    # session 3: no uv anywhere, pip installs; a new kernel in the image imports them, the .pth file of d included
    vm3 = VM(tmp_path/'vm3', storage, world['image'])
    r = vm3.cli('--restore', '--force', '--tool', 'pip')
    assert 'installed' in r.stdout and '(pip)' in r.stdout, r.stdout
    assert vm3.imports('plab_a', 'plab_c', 'plab_d') == ['a1.0', 'c1.0', 'd2.0']
    assert vm3.run(vm3.py, '-c', 'import sys; print(sys.plab_d_pth)').stdout.strip() == 'True'
    # the list shows packages, versions and the wheelhouse size
    r = vm3.cli('--list')
    assert 'plab-c' in r.stdout and 'package 1.0' in r.stdout and 'wheelhouse' in r.stdout, r.stdout

def test_the_kernel_that_restores_imports_at_once(world, tmp_path):
    "The image's own Python is the kernel: %load_ext restores the packages, the next line imports them, no restart"
    storage, idx = tmp_path/'storage', Index(world['index'])
    try:
        vm1 = VM(tmp_path/'vm1', storage, world['image'])
        vm1.pip('install', '--index-url', idx.url, 'plab-a')
        code = ("from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance(); "
                "ip.run_line_magic('load_ext', 'persistlab'); print(ip.run_line_magic('persist', '--packages --to {} --index-url {}'))")
        import IPython; host = Path(IPython.__file__).parent.parent  # IPython for the image's kernel, after the image's own
        r = vm1.run(vm1.py, '-c', code.format(storage, idx.url), PYTHONPATH=f'{ROOT}:{host}',  # the index named in the magic only
                    PERSISTLAB_PLATFORM='colab', PERSISTLAB_STORAGE=storage)
        assert 'plab-a' in r.stdout and 'saved' in r.stdout, r.stdout + r.stderr
    finally: idx.stop()
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    code = ("from IPython.core.interactiveshell import InteractiveShell; ip = InteractiveShell.instance(); "
            "ip.run_line_magic('load_ext', 'persistlab'); import plab_a; print('imported', plab_a.v); "
            "ip.run_line_magic('load_ext', 'persistlab')")
    env = dict(PYTHONPATH=f'{ROOT}:{host}', PERSISTLAB_PLATFORM='colab', PERSISTLAB_STORAGE=storage)
    r = vm2.run(vm2.py, '-c', code, **env)
    assert 'imported a1.0' in r.stdout, r.stdout + r.stderr
    r = vm2.run(vm2.py, '-c', code, **env)  # a kernel restart on the same VM: nothing is installed again
    assert 'imported a1.0' in r.stdout and 'installed' not in r.stdout, r.stdout

def other_python():
    "A CPython of another minor version on this machine (pyenv's, the system's, a CI runner's), for the new-image case"
    import glob
    pats = ['/root/.pyenv/versions/3.*/bin/python3', '/usr/bin/python3.*', '/usr/local/bin/python3.*', '/opt/hostedtoolcache/Python/3.*/x64/bin/python3']
    found = []
    for c in {p for pat in pats for p in glob.glob(pat) if p[-1].isdigit() or p.endswith('python3')}:
        r = subprocess.run([c, '-c', 'import sys, venv; print("%d.%d" % sys.version_info[:2])'], capture_output=True, text=True)
        v = tuple(map(int, r.stdout.split('.'))) if r.returncode == 0 and r.stdout.strip() else ()
        if v >= (3, 10) and v != sys.version_info[:2]: found.append((v, c))  # a Python persistlab supports (requires-python)
    return Path(max(found)[1]) if found else None  # the newest by version number (as strings, 3.9 sorts after 3.13)

def test_a_new_python_gets_what_fits_and_is_told_what_to_reinstall(world, tmp_path):
    "Saved on Python 3.11 (two pure wheels, one for CPython 3.11 only); a new image with another Python installs the pure ones"
    storage, links = tmp_path/'storage', f"{world['index']/'files'} {world['local']}"
    vm1 = VM(tmp_path/'vm1', storage, world['image'])
    vm1.pip('install', '--no-index', 'plab-b', 'plab-e', 'plab-f', PIP_FIND_LINKS=links)
    vm1.cli('--save', PIP_FIND_LINKS=links, PIP_NO_INDEX='1')
    py = other_python()
    assert py, 'no second Python on this machine: .ci/run needs one (pyenv) for this test'
    img = tmp_path/'image-new'
    subprocess.run([str(py), '-m', 'venv', '--without-pip', str(img)], check=True)  # no pip, no packaging: tags still known
    vm2 = VM(tmp_path/'vm2', storage, img)
    r = vm2.cli('--restore')
    assert vm2.imports('plab_b', 'plab_e') == ['b1.0', 'e1.0'], r.stdout
    assert 'does not fit' in r.stdout and 'pip install plab-f==1.0' in r.stdout and 'plab-b  does not fit' not in r.stdout, r.stdout
    assert vm2.run(vm2.py, '-c', 'import plab_f', check=False).returncode != 0

def test_compiled_modules_come_back_used_and_never_stale(world, tmp_path):
    "pip compiled plab-a and plab-b in session 1; a fresh VM's uv install gets those pycs back, Python loads them, an edit still wins"
    vm1, storage, files = saved(world, tmp_path, 'plab-a')
    (tag, s), = manifest(storage)['packages']['sets'].items()
    for n in ('plab-a', 'plab-b'):
        b = s['packages'][n]['bytecode']
        assert b['modules'] == 1 and (storage/'wheelhouse'/tag/'bytecode'/b['file']).stat().st_size == b['size'], b
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    r = vm2.cli('--restore')
    assert 'compiled modules  restored' in r.stdout and '2 kept with 2 packages' in r.stdout, r.stdout
    site = next(vm2.base.glob('image/lib/python*/site-packages'))
    pyc = next((site/'plab_a/__pycache__').glob('__init__.*.pyc'))
    assert int.from_bytes(pyc.read_bytes()[4:8], 'little') == 3  # checked against its source by hash (PEP 552)
    v = vm2.run(vm2.py, '-v', '-c', 'import plab_a; print(plab_a.v)', PYTHONDONTWRITEBYTECODE='')
    assert v.stdout.strip() == 'a1.0' and f"code object from '{pyc}'" in v.stderr, v.stderr[-2000:]  # loaded, not compiled
    # the user edits the installed source in place, same size (sed -i): the kept pyc must not bring the old code back
    src = site/'plab_a/__init__.py'; src.write_text(src.read_text().replace('a1.0', 'a1.X'))
    assert vm2.imports('plab_a') == ['a1.X']
    # a damaged zip in storage: the packages still install (their modules compile at first import), and it is said
    b = s['packages']['plab-a']['bytecode']; z = storage/'wheelhouse'/tag/'bytecode'/b['file']
    z.write_bytes(b'\0' * b['size'])
    vm3 = VM(tmp_path/'vm3', storage, world['image'])
    r = vm3.cli('--restore')
    assert '1 zips differ from the manifest' in r.stdout and '1 kept with 1 packages' in r.stdout, r.stdout
    site3 = next(vm3.base.glob('image/lib/python*/site-packages'))
    assert not list(site3.glob('plab_a/__pycache__/*.pyc')) and len(list(site3.glob('plab_b/__pycache__/*.pyc'))) == 1
    assert vm3.imports('plab_a', 'plab_b') == ['a1.0', 'b1.0']

# --- bad input: one line, nothing changed -----------------------------------------------------------------------------

def one_line_error(r):
    assert r.returncode == 1 and r.stderr.startswith('persistlab: ') and r.stderr.count('\n') == 1, (r.stdout, r.stderr)
    return r.stderr

def test_bad_input_is_one_line_and_changes_nothing(world, tmp_path, tmpfs):
    storage, idx = tmp_path/'storage', Index(world['index'])
    vm = VM(tmp_path/'vm1', storage, world['image'])
    try:
        vm.pip('install', '--index-url', idx.url, 'plab-b')
        vm.cli('--save', PIP_INDEX_URL=idx.url)
        before = (storage/'persistlab.json').read_bytes(), sorted(os.listdir(storage))
        # a package the index has only as an sdist that does not build (the user had installed a local wheel)
        vm.pip('install', '--no-index', '--find-links', world['local'], 'plab-bad')
        err = one_line_error(vm.cli('--save', PIP_INDEX_URL=idx.url, check=False))
        assert 'plab-bad cannot be built into a wheel' in err and 'Fortran' in err, err
        assert ((storage/'persistlab.json').read_bytes(), sorted(os.listdir(storage))) == before
        vm.pip('uninstall', '-y', 'plab-bad')
    finally: idx.stop()
    # the index is gone while a new package needs its wheel
    vm.pip('install', '--no-index', '--find-links', world['index']/'files', 'plab-e')
    err = one_line_error(vm.cli('--save', PIP_INDEX_URL=idx.url, check=False))
    assert 'cannot be reached' in err and 'plab-e' in err, err
    assert (storage/'persistlab.json').read_bytes() == before[0]
    vm.pip('uninstall', '-y', 'plab-e')
    # a full storage: a 1 MB tmpfs, a 3 MB wheel
    small = tmpfs('small')
    vm.pip('install', '--no-index', '--find-links', world['local'], 'plab-big')
    err = one_line_error(vm.run(sys.executable, CLI, '--save',
                                '--python', vm.py, '--to', small, PIP_FIND_LINKS=f"{world['local']} {world['index']/'files'}",
                                PIP_NO_INDEX='1', PERSISTLAB_STORAGE=small, check=False))  # the variable names it too: no switch
    assert 'storage is full' in err and 'nothing changed' in err, err
    assert os.listdir(small) == [], os.listdir(small)  # not even a lock file
    assert not (small/'persistlab.json').exists()
    # a wheelhouse edited by hand: nothing installed, the wheel named
    (wh,) = (storage/'wheelhouse').iterdir()
    w = next(wh.glob('plab_b-*.whl'))
    with open(w, 'ab') as f: f.write(b'edited')
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    err = one_line_error(vm2.cli('--restore', check=False))
    assert w.name in err and 'nothing installed' in err, err
    assert vm2.run(vm2.py, '-c', 'import plab_b', check=False).returncode != 0

def debian_pip_image(tmp_path):
    "An image venv made as Debian 12 makes one (`/usr/bin/python3 -m venv`: pip 23.0.1 from ensurepip), else None"
    if not Path('/usr/bin/python3').exists(): return None
    img = tmp_path/'debian-image'
    r = subprocess.run(['/usr/bin/python3', '-m', 'venv', str(img)], capture_output=True)
    if r.returncode: return None
    backdate(img)
    return img

def test_one_damaged_wheel_does_not_keep_the_others_out(world, tmp_path):
    "A wheel changed in the wheelhouse (a flipped byte on Drive): the others are installed, that one is named with the lines that mend "
    "it, and they do (a fresh VM installed nothing and was told to 'save again', which a fresh VM cannot)"
    storage, links = tmp_path/'storage', f"{world['index']/'files'} {world['local']}"
    vm1 = VM(tmp_path/'vm1', storage, world['image'])
    vm1.pip('install', '--no-index', 'plab-b', 'plab-e', PIP_FIND_LINKS=links)
    vm1.cli('--save', PIP_FIND_LINKS=links, PIP_NO_INDEX='1')
    (wh,) = (storage/'wheelhouse').iterdir()
    w = next(wh.glob('plab_b-*.whl'))
    with open(w, 'ab') as f: f.write(b'edited')
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    err = one_line_error(vm2.cli('--restore', check=False))
    assert w.name in err and 'plab-b not installed' in err and '`pip install plab-b==1.0`, then `%persist --packages`' in err, err
    assert '`%persist --packages --undo plab-b`' in err and err.rstrip().endswith('(installed meanwhile: plab-e)'), err
    assert vm2.imports('plab_e') == ['e1.0'] and vm2.run(vm2.py, '-c', 'import plab_b', check=False).returncode != 0
    vm2.pip('install', '--no-index', 'plab-b==1.0', PIP_FIND_LINKS=links)  # the lines it gave
    vm2.cli('--save', PIP_FIND_LINKS=links, PIP_NO_INDEX='1')
    vm3 = VM(tmp_path/'vm3', storage, world['image'])
    r = vm3.cli('--restore')
    assert vm3.imports('plab_b', 'plab_e') == ['b1.0', 'e1.0'], r.stdout + r.stderr

@pytest.mark.parametrize('pip', ['image', 'debian'])
def test_a_package_that_cannot_be_built_is_named(world, tmp_path, pip):
    "The index has only an sdist whose build hook fails; pip 23.0.1 (Debian's venvs) and the image's pip: the line names it"
    image = world['image'] if pip == 'image' else debian_pip_image(tmp_path)
    assert image, 'no Debian python3 with venv/ensurepip here: .ci/run installs python3-venv'
    storage, idx = tmp_path/'storage', Index(world['index'])
    try:
        vm = VM(tmp_path/'vm1', storage, image)
        vm.pip('install', '--no-index', '--find-links', world['local'], 'plab-broken')
        vm.pip('install', '--index-url', idx.url, 'plab-b', 'plab-e')
        err = one_line_error(vm.cli('--save', PIP_INDEX_URL=idx.url, check=False))
    finally: idx.stop()
    assert 'plab-broken cannot be built into a wheel' in err and 'Fortran' in err and 'plab-e' not in err, err
    assert os.listdir(storage) == [], os.listdir(storage)  # nothing changed: not even a lock file

def test_a_package_from_a_folder_that_is_gone_is_named(world, tmp_path):
    "`pip install ./gonepkg`, then the folder is deleted: the save names the package and the folder, and changes nothing"
    storage = tmp_path/'storage'
    vm = VM(tmp_path/'vm1', storage, world['image'])
    vm.pip('install', '--no-index', '--find-links', world['index']/'files', 'plab-e')
    src = tmp_path/'src'; src.mkdir()
    with tarfile.open(src/make_sdist(src, 'gonepkg', '1.0', 'v = "g1.0"\n')) as t: t.extractall(src)
    vm.pip('install', '--no-index', src/'gonepkg-1.0')
    shutil.rmtree(src)
    err = one_line_error(vm.cli('--save', PIP_FIND_LINKS=world['index']/'files', PIP_NO_INDEX='1', check=False))
    assert f"gonepkg 1.0 was installed from {src}/gonepkg-1.0, which is gone" in err and 'pip install gonepkg==1.0' in err, err
    assert os.listdir(storage) == [], os.listdir(storage)

@pytest.mark.parametrize('tool', ['pip', 'uv'])
def test_a_wheel_built_at_install_saves_with_the_index_down(world, tmp_path, tool):
    "plab-c was built from its sdist when installed: pip's (uv's) cache keeps that wheel, so a save needs no index"
    storage, idx = tmp_path/'storage', Index(world['index'])
    vm = VM(tmp_path/'vm1', storage, world['image'])
    try:
        if tool == 'pip': vm.pip('install', '--index-url', idx.url, 'plab-c')
        else: vm.run('uv', 'pip', 'install', '--python', vm.py, '--index-url', idx.url, 'plab-c')
    finally: idx.stop()
    cache = vm.base/'cache'/('pip/wheels' if tool == 'pip' else 'uv')  # the VM's XDG_CACHE_HOME, UV_CACHE_DIR
    assert [f for f in cache.rglob('plab_c-1.0-*.whl') if f.is_file()]
    r = vm.cli('--save', PIP_INDEX_URL=idx.url)  # stopped: pip would fail
    assert f"from {tool}'s cache" in r.stdout, r.stdout
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    vm2.cli('--restore')
    assert vm2.imports('plab_c') == ['c1.0']

def test_an_extra_index_is_passed_to_pip(world, tmp_path):
    "A package from an extra index (the main one lacks it): `extra_index_url` is given to pip"
    storage, idx = tmp_path/'storage', Index(world['index'])
    (tmp_path/'empty/files').mkdir(parents=True); empty = Index(tmp_path/'empty')
    vm = VM(tmp_path/'vm1', storage, world['image'])
    code = ("import sys; from persistlab.packages import save_packages; "
            "print(save_packages(to=sys.argv[1], python=sys.argv[2], index_url=sys.argv[3], extra_index_url=sys.argv[4:], quiet=True))")
    try:
        vm.pip('install', '--no-index', '--find-links', world['index']/'files', 'plab-e')
        r = vm.run(sys.executable, '-c', code, storage, vm.py, empty.url, check=False)
        assert 'No matching distribution' in r.stderr, r.stderr  # the main index has no plab-e
        r = vm.cli('--save', '--index-url', empty.url, '--extra-index-url', idx.url)  # as a user types it
        assert 'plab-e' in r.stdout and 'saved' in r.stdout, r.stdout
    finally: idx.stop(); empty.stop()

def test_a_hand_edited_manifest_is_one_line(world, tmp_path):
    "A `wheel` that is not a wheel file name, a missing `sha256`: one line naming the entry and the file, nothing installed"
    vm, storage, files = saved(world, tmp_path, 'plab-b')
    good = manifest(storage)
    (tag, s), = good['packages']['sets'].items()
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    for edit, says in [(dict(wheel='plab_b.zip'), "'plab_b.zip' is not a wheel file name"), (dict(sha256=None), "has no 'sha256'")]:
        m = json.loads(json.dumps(good)); r = m['packages']['sets'][tag]['packages']['plab-b']; r.update(edit)
        if r['sha256'] is None: del r['sha256']
        (storage/'persistlab.json').write_text(json.dumps(m))
        err = one_line_error(vm2.cli('--restore', check=False))
        assert f"{storage/'persistlab.json'}: the packages entry {tag}/plab-b" in err and says in err and 'nothing installed' in err, err
        assert says in vm2.cli('--list').stdout
        err = one_line_error(vm2.cli('--save', PIP_FIND_LINKS=files, PIP_NO_INDEX='1', check=False))
        assert 'nothing changed' in err and manifest(storage) == m, err
    assert vm2.run(vm2.py, '-c', 'import plab_b', check=False).returncode != 0

def test_wheels_no_record_names_are_listed_and_removed(world, tmp_path):
    "`--forget plab-e` without `--wheels` leaves its wheel: `--list` names the command that deletes it, and only it"
    vm, storage, files = saved(world, tmp_path, 'plab-b', 'plab-e')
    vm.cli('--forget', 'plab-e')
    (wh,) = (storage/'wheelhouse').iterdir()
    assert list(wh.glob('plab_e-*.whl'))
    out = vm.cli('--list').stdout
    assert '1 wheels not recorded' in out and '`%persist --packages --undo plab-e --wheels` deletes them' in out, out
    r = vm.cli('--forget', 'plab-e', '--wheels')  # the hint, as the CLI spells it
    assert 'deleted' in r.stdout and not list(wh.glob('plab_e-*.whl')), r.stdout
    out = vm.cli('--list').stdout
    assert 'not recorded' not in out and 'plab-b' in out and list(wh.glob('plab_b-*.whl')), out  # the recorded one is kept
    vm.cli('--forget', 'plab-b')
    assert 'no record names' in one_line_error(vm.cli('--forget', check=False))
    r = vm.cli('--forget', '--wheels')  # all: every wheel no record names
    assert 'deleted' in r.stdout and not list(wh.glob('*.whl')), r.stdout

@pytest.mark.parametrize('point', ['wheels-staged', 'wheels-moved', 'packages-recorded'])
def test_sigkill_during_save_leaves_a_usable_wheelhouse(world, tmp_path, point):
    "Killed while saving a new package: the next VM restores what the wheelhouse and manifest agree on"
    vm, storage, files = saved(world, tmp_path, 'plab-b')
    vm.pip('install', '--no-index', '--find-links', files, 'plab-e', 'plab-d==2.0')
    r = vm.cli('--save', PIP_FIND_LINKS=files, PIP_NO_INDEX='1', PERSISTLAB_FAILPOINT=point, check=False)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    vm2.cli('--restore')
    assert vm2.imports('plab_b') == ['b1.0']
    got = vm2.run(vm2.py, '-c', 'import plab_e', check=False).returncode == 0
    assert got == (point == 'packages-recorded')  # only a save that reached the manifest counts
    # the next save finishes the job
    vm.cli('--save', PIP_FIND_LINKS=files, PIP_NO_INDEX='1')
    vm3 = VM(tmp_path/'vm3', storage, world['image'])
    vm3.cli('--restore', '--force')
    assert vm3.imports('plab_b', 'plab_e', 'plab_d') == ['b1.0', 'e1.0', 'd2.0']
    assert not list((storage/'.persistlab-tmp').glob('wheels.*')) if (storage/'.persistlab-tmp').exists() else True
    assert not list((vm.base/'tmp').glob('persistlab-wheels-*'))  # the killed save's local copies went with the next save

def test_forget(world, tmp_path):
    vm, storage, files = saved(world, tmp_path, 'plab-b', 'plab-e')
    r = vm.cli('--forget', 'plab-e', '--wheels')
    assert 'forgotten' in r.stdout
    (tag, s), = manifest(storage)['packages']['sets'].items()
    assert list(s['packages']) == ['plab-b'] and not list((storage/'wheelhouse'/tag).glob('plab_e*'))
    err = one_line_error(vm.cli('--forget', 'nope', check=False))
    assert 'not recorded: nope' in err
    # forgotten without --wheels, then all of it with --wheels: its compiled modules' zip goes too (it stayed, named by nothing)
    assert list((storage/'wheelhouse'/tag/'bytecode').glob('plab_b*.zip')) or list((storage/'wheelhouse'/tag/'bytecode').glob('*.zip'))
    vm.cli('--forget', 'plab-b'); r = vm.cli('--forget', 'all', '--wheels')
    assert not list((storage/'wheelhouse'/tag).glob('*.whl')) and not list((storage/'wheelhouse'/tag/'bytecode').glob('*.zip')), r.stdout

# --- the Colab journey, as the guide prints it ------------------------------------------------------------------------

def image_site(vm=None):
    "Where root's `pip install` writes for the VM's Python: pyenv's lib/python3.X/site-packages, Debian's /usr/local/.../dist-packages"
    if vm is not None and vm.stack:  # a VM on its platform's stack: the host folder holding the image's packages
        from stacks import stack_python
        return stack_python(vm.stack)[1]
    from replicas import PYEXE
    r = subprocess.run([str(PYEXE), '-I', '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'], capture_output=True, text=True, check=True)
    return Path(r.stdout.strip())

def colab_vm(replica, world):
    "A fresh Colab VM whose system site-packages is the image's: an overlay, so `!pip install` writes only into this VM"
    vm = replica('colab', drive=world['base']/'drive', env=dict(PERSISTLAB_IMAGE_TIME=time.time()))  # the VM starts now
    if vm.stack: return vm  # on Colab's own stack the replica already made the image's site-packages an overlay
    sp = image_site()
    up = vm.base/'overlay'; (up/'u').mkdir(parents=True); (up/'w').mkdir()
    vm.sh(f"mount -t overlay overlay -o lowerdir={sp},upperdir={up/'u'},workdir={up/'w'} {sp}")
    return vm

def test_colab_journey_pip_installs_come_back(replica, world):
    "Session 1: `!pip install`, then `%persist --mount --packages`; session 2 on a new VM: `%persist --mount -r`, import"
    vm1 = colab_vm(replica, world)
    for f in (world['index']/'files').glob('plab_[ab]-1.0-*.whl'): shutil.copy(f, vm1.wheelhouse)  # what pip can reach
    c1, c2 = vm1.run(['!pip install -q plab-a', '%load_ext persistlab\n%persist --mount --packages'])
    assert c1.ok and c2.ok and 'plab-a' in c2.out and 'plab-b' in c2.out, (c1, c2)
    vm2 = colab_vm(replica, world)  # a new VM: the image again, nothing in its wheelhouse (pip cannot reach an index)
    c1, c2, c3 = vm2.run(['%load_ext persistlab', '%persist --mount', 'import plab_a; print(plab_a.v, plab_a.plab_b.v)'])
    assert c2.ok and 'installed' in c2.out, c2  # Drive was not mounted at %load_ext: installed once it is
    assert c3.ok and c3.out.strip() == 'a1.0 b1.0', c3
    c = vm2.run_cell('%load_ext persistlab\n%persist --mount -r')  # a kernel restart, and -r: nothing installed twice
    assert c.ok and 'already installed' in c.out and 'wheelhouse' not in c.out, c
    assert not list(image_site(vm2).glob('plab_a*'))  # the host's Python (or the stack's packages) untouched

# --- venvs ------------------------------------------------------------------------------------------------------------

def test_a_moved_venv_works_again_and_becomes_a_kernel(world, tmp_path):
    "A venv kept in storage comes back at another path, its base interpreter elsewhere: fixed, then a Jupyter kernel"
    sb = VM(tmp_path/'vm', tmp_path/'storage', world['image'])
    a = tmp_path/'old-storage/venvs/ml'
    subprocess.run([sys.executable, '-m', 'venv', str(a)], check=True)
    import ipykernel  # the tests' ipykernel, importable in the venv as if pip-installed there (no index here)
    (next(a.glob('lib/python3*/site-packages'))/'test-ipykernel.pth').write_text(str(Path(ipykernel.__file__).parents[1]) + '\n')
    sb.run(a/'bin/python', '-m', 'pip', 'install', '-q', '--no-index', '--find-links', world['index']/'files', 'plab-e')
    b = sb.home/'venvs/ml'; b.parent.mkdir(parents=True)
    os.rename(a, b)  # storage moved
    for n in ('python', 'python3', 'python3.11'):  # and the new image has its Python elsewhere
        if (b/'bin'/n).is_symlink(): (b/'bin'/n).unlink(); os.symlink('/nonexistent/bin/python3.11', b/'bin'/n)
    with pytest.raises(OSError): sb.run(b/'bin/pip', '--version')  # its #! names the old place
    r = sb.run(sys.executable, CLI, '--venv', b, '--kernel', 'ml')
    assert 'interpreter' in r.stdout and 'moved' in r.stdout and 'kernel' in r.stdout, r.stdout
    assert 'plab-e' in sb.run(b/'bin/pip', 'list').stdout  # its scripts run again
    spec = json.loads((sb.home/'.local/share/jupyter/kernels/ml/kernel.json').read_text())
    assert spec['argv'][0] == str(b/'bin/python'), spec
    out = kernel_prints(sb, 'ml', 'import sys, plab_e; print(sys.prefix, plab_e.v)')
    assert f'{b} e1.0' in out, out

def test_wheels_on_a_remote_filesystem_are_copied_to_local_disk_first(world, tmp_path, monkeypatch):
    "Storage on Drive (FUSE): each wheel is copied to local disk and checked there, then installed from the copy"
    from persistlab import packages as P
    vm, storage, files = saved(world, tmp_path, 'plab-e')
    vm2 = VM(tmp_path/'vm2', storage, world['image'])
    monkeypatch.setattr(P, 'fstype', lambda p: 'fuse.drive')  # what /proc/mounts says of /content/drive on Colab
    copies = []
    real = P._copy_hash
    monkeypatch.setattr(P, '_copy_hash', lambda src, dst=None, progress=None: copies.append((src, dst)) or real(src, dst, progress))
    for k, v in vm2.env().items(): monkeypatch.setenv(k, v)
    r = P.restore_packages(to=storage, python=vm2.py, quiet=True)
    assert [x.what for x in r] == ['installed', 'restored'] and vm2.imports('plab_e') == ['e1.0']  # the wheel, and its compiled module
    (src, dst), (zsrc, zdst) = copies  # each read once from storage, on its way to local disk, where it is checked and used
    assert src.parent.parent == storage/'wheelhouse' and not dst.is_relative_to(storage) and not dst.exists()  # a temp copy, gone
    assert zsrc.parent.name == 'bytecode' and zsrc.parent.parent == src.parent and zdst and not zdst.is_relative_to(storage) and not zdst.exists()

def test_the_forms_packages_box_saves_and_restores_them(tmp_path):
    "The Persist tab's box calls the same engine functions as `%persist --packages` and `-r`"
    from test_forms import Spy
    from persistlab.platforms import detect
    from persistlab.forms import Setup
    from persistlab.core import Report
    spy = Spy()
    spy.save_packages = lambda **k: spy._rec('save_packages', **k) or Report([('packages', 'nothing to keep', 'none installed')])
    spy.restore_packages = lambda **k: spy._rec('restore_packages', **k) or Report([('plab-d', 'conflict', 'this image has 1.0, you saved 2.0')])
    p = detect(env=dict(HOME=str(tmp_path), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(tmp_path/'st')))
    f = Setup(p, engine=spy)
    for c in f.paths.values(): c.value = False
    f.pkgs.value = True
    f.persist_btn.click(); f.wait()
    assert 'Persist: packages nothing to keep' in f.msgs['Persist'].value, f.msgs['Persist'].value  # what the engine said
    f.restore_btn.click(); f.wait()
    assert [c[0] for c in spy.calls] == ['save_packages', 'restore', 'restore_packages'], spy.calls
    assert 'Restore: plab-d conflict' in f.msgs['Persist'].value and 'you saved 2.0' in f.details['Persist'].value
    assert spy.calls[0][2]['to'] == f.storage

# --- the tools are not yours; an image without uv gets it from the wheelhouse; the image's constraint files (issues 18, 21) ---

def _host_path():
    from test_packages_settings import host_path  # IPython and fastcore for the image's Python, as a kernel has them
    return host_path()

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
             'fastcore': ['packaging'], 'requests': ['urllib3', 'idna'], 'tqdm': [], 'websocket-client': [], 'decorator': [], 'traitlets': [], 'urllib3': [],
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
                       capture_output=True, timeout=120, env=vm.env(PYTHONPATH=_host_path(), PERSISTLAB_RUN=vm.base/'run2',
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
