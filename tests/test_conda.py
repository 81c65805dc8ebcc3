"conda envs that move: real envs, solved and linked by rattler (pixi's conda library) from a channel built here"
import os, io, sys, json, time, shutil, asyncio, hashlib, tarfile, subprocess
from pathlib import Path
import pytest
from conftest import Sandbox
from test_packages import kernel_prints

rattler = pytest.importorskip('rattler')  # py-rattler, in the `dev` extra (CI installs it: a skip fails CI)

# conda-build's placeholder for the env's path is this long, so that any real path fits into a binary in its place
PH = ('/opt/conda-bld/plab_1700000000000/_h_env' + '_placehold' * 30)[:255]
PY = f'{sys.version_info.major}.{sys.version_info.minor}'
CLI = Path(__file__).resolve().parent/'standins'/'packages_cli.py'
STDLIB_SKIP = {'test', 'site-packages', 'idlelib', 'tkinter', 'turtledemo', 'ensurepip', 'lib2to3', '__pycache__'}

# --- a local conda channel ---------------------------------------------------------------------------------------------

def _in_place(b, old, new):
    "`old` -> `new` (not longer) in a binary's NUL-terminated string, padded so no offset moves"
    assert len(new) <= len(old) and old + b'\0' in b
    return b.replace(old + b'\0', new + b'\0' * (len(old) - len(new) + 1))

def conda_pkg(channel, name, version, files, depends=(), noarch=None, link=None):
    "A `.tar.bz2` conda package; files: {path: bytes | ('link', target) | (bytes, mode, None|'text'|'binary')}"
    entries, items = [], []
    for p, v in sorted(files.items()):
        if v[0] == 'link': entries.append({'_path': p, 'path_type': 'softlink'}); items.append((p, v[1], None)); continue
        data, mode, fm = (v, 0o644, None) if isinstance(v, bytes) else v
        e = {'_path': p, 'path_type': 'hardlink', 'sha256': hashlib.sha256(data).hexdigest(), 'size_in_bytes': len(data)}
        if fm: e.update(prefix_placeholder=PH, file_mode=fm)
        entries.append(e); items.append((p, data, mode))
    index = dict(name=name, version=version, build='0', build_number=0, depends=list(depends), license='MIT',
                 subdir='noarch' if noarch else 'linux-64', timestamp=int(time.time() * 1000))
    index.update({'noarch': noarch} if noarch else {'platform': 'linux', 'arch': 'x86_64'})
    info = {'info/index.json': json.dumps(index), 'info/paths.json': json.dumps({'paths': entries, 'paths_version': 1}),
            'info/files': ''.join(e['_path'] + '\n' for e in entries)}
    if link: info['info/link.json'] = json.dumps(link)
    d = Path(channel)/index['subdir']; d.mkdir(parents=True, exist_ok=True)
    with tarfile.open(d/f'{name}-{version}-0.tar.bz2', 'w:bz2', compresslevel=1) as t:
        for p, text in info.items():
            b = text.encode(); ti = tarfile.TarInfo(p); ti.size = len(b); t.addfile(ti, io.BytesIO(b))
        for p, v, mode in items:
            ti = tarfile.TarInfo(p)
            if mode is None: ti.type, ti.linkname = tarfile.SYMTYPE, v; t.addfile(ti)
            else: ti.size, ti.mode = len(v), mode; t.addfile(ti, io.BytesIO(v))

def python_files(tmp):
    "This machine's interpreter as a conda `python` package: its binary, libpython and stdlib (no tests, no site-packages)"
    base = Path(sys.base_prefix); old = str(base).encode(); files = {}
    exe = (base/f'bin/python{PY}').read_bytes()
    if old + b'/lib\0' in exe: exe = _in_place(exe, old + b'/lib', b'$ORIGIN/../lib')  # relocatable, as conda-forge's is
    files[f'bin/python{PY}'] = (exe, 0o755, None)
    files['bin/python3'] = files['bin/python'] = ('link', f'python{PY}')
    # conda-forge's python has scripts whose #! is the placeholder (pydoc, idle, 2to3), and its sysconfig data names it
    files[f'bin/pydoc{PY}'] = (f'#!{PH}/bin/python{PY}\nimport pydoc\nif __name__ == "__main__": pydoc.cli()\n'.encode(), 0o755, 'text')
    for so in base.glob('lib/libpython*.so*'):
        if so.is_symlink(): files[f'lib/{so.name}'] = ('link', os.readlink(so)); continue
        small = Path(tmp)/so.name; shutil.copy(so, small)
        if shutil.which('strip'): subprocess.run(['strip', '--strip-unneeded', str(small)], check=True)  # smaller, faster
        b = small.read_bytes()
        files[f'lib/{so.name}'] = (_in_place(b, old + b'/lib', b'$ORIGIN') if old + b'/lib\0' in b else b, 0o755, None)
    std = base/f'lib/python{PY}'
    for dp, dns, fns in os.walk(std):
        dns[:] = [d for d in dns if d not in STDLIB_SKIP and not d.startswith('config-')]
        for f in fns:
            p = Path(dp)/f; rel = f'lib/python{PY}/{p.relative_to(std)}'
            if p.is_symlink(): continue
            if f.startswith('_sysconfigdata') and f.endswith('.py'): files[rel] = (p.read_bytes().replace(old, PH.encode()), 0o644, 'text')
            else: files[rel] = (p.read_bytes(), p.stat().st_mode & 0o777, None)
    files[f'lib/python{PY}/site-packages/README.txt'] = b'This directory exists so that 3rd party packages can be installed here.\n'
    if b'dist-packages' in (std/'site.py').read_bytes():  # Debian's site.py (CI from Debian's Python) looks in dist-packages only:
        files[f'lib/python{PY}/sitecustomize.py'] = (  # find lib/pythonX.Y/site-packages as conda-forge's python does
            b"import os, site, sys\nsite.addsitedir(os.path.join(sys.prefix, 'lib', 'python%d.%d' % sys.version_info[:2], 'site-packages'))\n",
            0o644, None)
    return files

def build_channel(channel):
    "python; plab-hello (noarch: an entry point, a text file naming the env); plab-where (a C program naming it); plab-syssite"
    channel = Path(channel); channel.mkdir(parents=True)
    conda_pkg(channel, 'python', sys.version.split()[0], python_files(channel.parent))
    conda_pkg(channel, 'plab-hello', '1.0', {
        'site-packages/plab_hello/__init__.py': b'import sys\ndef main(): print("hello from", sys.prefix)\n',
        'etc/plab-hello.conf': (f'data = {PH}/share/plab-hello\n'.encode(), 0o644, 'text')},
        noarch='python', depends=[f'python >={PY}'],
        link={'noarch': {'type': 'python', 'entry_points': ['plab-hello = plab_hello:main']}, 'package_metadata_version': 1})
    src = channel.parent/'where.c'
    src.write_text(f'#include <stdio.h>\nstatic const char here[] = "{PH}/share/plab-where";\nint main(void) {{ puts(here); return 0; }}\n')
    subprocess.run(['cc', '-o', str(channel.parent/'plab-where'), str(src)], check=True)
    conda_pkg(channel, 'plab-where', '1.0', {'bin/plab-where': ((channel.parent/'plab-where').read_bytes(), 0o755, 'binary')})
    # stands for `conda install ipykernel` (no channel with it is reachable): this machine's site-packages, where it is
    import ipykernel
    conda_pkg(channel, 'plab-syssite', '1.0', {'site-packages/plab_syssite.pth': f'{Path(ipykernel.__file__).parent.parent}\n'.encode()},
              noarch='python', depends=['python'])
    asyncio.run(rattler.index.index_fs(channel, write_zst=False, write_shards=False))
    return channel

@pytest.fixture(scope='session')
def channel(tmp_path_factory):
    base = tmp_path_factory.mktemp('conda')
    return dict(channel=build_channel(base/'channel'), cache=base/'cache')

def conda_create(ch, prefix, *specs):
    "`conda create -p prefix specs` (or install into it), done by rattler from the local channel"
    async def go():
        gw = rattler.Gateway(cache_dir=ch['cache']/'repodata')
        recs = await rattler.solve([rattler.Channel(ch['channel'].as_uri())], specs, gateway=gw, platforms=['linux-64', 'noarch'])
        await rattler.install(recs, target_prefix=str(prefix), cache_dir=ch['cache']/'pkgs', show_progress=False)
    asyncio.run(go())
    return Path(prefix)

@pytest.fixture(autouse=True)
def _hermetic(tmp_path, monkeypatch):
    "rattler in this process: its config and caches in tmp, not this machine's home"
    for k, d in dict(HOME='home', XDG_CONFIG_HOME='home/.config', XDG_CACHE_HOME='cache', XDG_DATA_HOME='home/.local/share').items():
        monkeypatch.setenv(k, str(tmp_path/d))

def move(a, b):
    "What a restore into new storage does: the env copied to its new place (links, modes, times kept), the old one gone"
    b.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(['cp', '-a', str(a), str(b)], check=True); shutil.rmtree(a)

def names(env, text):
    "Files in the env that still contain `text` (conda-meta records aside)"
    r = subprocess.run(['grep', '-rlF', '--exclude-dir=conda-meta', '--exclude-dir=__pycache__', text, str(env)], capture_output=True, text=True)
    return r.stdout.split()

# --- journeys --------------------------------------------------------------------------------------------------------

def test_a_conda_env_moved_to_new_storage_works_again_and_becomes_a_kernel(channel, tmp_path):
    "An env made at the old storage path comes back at a new (shorter) one: fixed, ipykernel missing said, then a kernel"
    sb = Sandbox(tmp_path/'vm')
    a = conda_create(channel, tmp_path/'storage-before-the-move/envs/ml', 'python', 'plab-hello', 'plab-where')
    assert subprocess.run([a/'bin/plab-where'], capture_output=True, text=True).stdout == f'{a}/share/plab-where\n'
    b = tmp_path/'storage/envs/ml'
    move(a, b)
    with pytest.raises(OSError): subprocess.run([b/'bin/plab-hello'])  # its #! names the old place
    assert subprocess.run([b/'bin/plab-where'], capture_output=True, text=True).stdout == f'{a}/share/plab-where\n'

    r = sb.run(sys.executable, CLI, '--venv', b, '--kernel', 'ml', check=False)  # a new env has no ipykernel yet
    assert r.returncode and f"{b} has no ipykernel: `conda install -p {b} ipykernel` or `{b}/bin/python -m pip install ipykernel`" in r.stderr, r
    assert len((r.stdout + r.stderr).strip().splitlines()) == 1, r
    # ... but its paths were fixed first
    run = lambda *c: sb.run(*c).stdout
    assert run(b/'bin/plab-hello') == f'hello from {b}\n'  # the entry point rattler wrote
    assert run(b/'bin/python', '-c', 'import sys, sysconfig; print(sys.prefix, sysconfig.get_config_var("prefix"))') == f'{b} {b}\n'
    assert run(b/f'bin/pydoc{PY}', '-k', 'zzz-nothing') == ''  # a text file with a placeholder: its #!
    assert (b/'etc/plab-hello.conf').read_text() == f'data = {b}/share/plab-hello\n'
    assert run(b/'bin/plab-where') == f'{b}/share/plab-where\n'  # a binary, NUL-padded (the new path is shorter)
    assert names(b, str(a)) == []  # nothing in the env names the old place
    assert os.stat(b/'bin/plab-where').st_mode & 0o777 == 0o755

    from persistlab.packages import fix_env
    before = {p: p.stat().st_mtime_ns for p in b.rglob('*') if p.is_file() and not p.is_symlink()}
    assert fix_env(b) == []  # a second run changes nothing
    assert before == {p: p.stat().st_mtime_ns for p in b.rglob('*') if p.is_file() and not p.is_symlink()}

    conda_create(channel, b, 'python', 'plab-hello', 'plab-where', 'plab-syssite')  # rattler still takes the fixed env
    r = sb.run(sys.executable, CLI, '--venv', b, '--kernel', 'ml')
    assert 'kernel' in r.stdout and f'{b}/bin/python' in r.stdout, r.stdout
    spec = json.loads((sb.home/'.local/share/jupyter/kernels/ml/kernel.json').read_text())
    assert spec['argv'][0] == str(b/'bin/python'), spec
    out = kernel_prints(sb, 'ml', 'import sys, plab_hello; print(sys.prefix, plab_hello.__file__)')
    assert f'{b} {b}/lib/python{PY}/site-packages/plab_hello/__init__.py' in out, out

def test_a_longer_new_path_fixes_scripts_and_text_and_names_the_binary_it_cannot(channel, tmp_path):
    "Moved to a path longer than the old one (and than a #! line may be): scripts and text fixed, the binary reported"
    sb = Sandbox(tmp_path/'vm')
    a = conda_create(channel, tmp_path/'s/ml', 'python', 'plab-hello', 'plab-where')
    b = tmp_path/('storage-' + 'x' * 200)/'envs/ml'
    move(a, b)
    r = sb.run(sys.executable, CLI, '--venv', b, '--kernel', 'ml', check=False)  # no ipykernel, and a binary with no room
    assert r.returncode and len(r.stderr.strip().splitlines()) == 1, r
    assert f'has no ipykernel' in r.stderr and f'and {b}/bin/plab-where was left as it was' in r.stderr and 'reinstall plab-where' in r.stderr, r
    assert len(f'#!{b}/bin/python{PY}') > 256  # too long for Linux: the #! became the /bin/sh form, which runs
    assert sb.run(b/'bin/plab-hello').stdout == f'hello from {b}\n'
    assert sb.run(b/f'bin/pydoc{PY}', '-k', 'zzz-nothing').stdout == ''
    assert (b/'etc/plab-hello.conf').read_text() == f'data = {b}/share/plab-hello\n'
    assert names(b, str(a)) == [str(b/'bin/plab-where')]  # only the binary it said

    conda_create(channel, b, 'python', 'plab-hello', 'plab-where', 'plab-syssite')  # ipykernel, then the magic in IPython
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=f'%load_ext persistlab\n%persist --venv {b} --kernel long\nexit\n', env=sb.env(), capture_output=True, text=True, timeout=120)
    assert 'Python (long)' in r.stdout and 'Error' not in r.stdout + r.stderr, r
    assert json.loads((sb.home/'.local/share/jupyter/kernels/long/kernel.json').read_text())['argv'][0] == str(b/'bin/python')

def test_a_folder_that_is_neither_kind_gets_one_line(tmp_path):
    sb = Sandbox(tmp_path/'vm'); (tmp_path/'plain').mkdir()
    r = sb.run(sys.executable, CLI, '--venv', tmp_path/'plain', check=False)
    assert r.returncode and (r.stdout + r.stderr).strip().splitlines() == \
        [f'persistlab: {tmp_path}/plain is neither a venv (no pyvenv.cfg) nor a conda env (no conda-meta/)'], r

def test_a_fix_cut_short_is_finished_by_the_next_run(channel, tmp_path, monkeypatch):
    "The disk fills after two files: the next run still knows where the env was (bin/ is fixed last) and finishes"
    from persistlab import packages as P
    a = conda_create(channel, tmp_path/'storage-before-the-move/envs/ml', 'python', 'plab-hello', 'plab-where')
    b = tmp_path/'storage/envs/ml'; move(a, b)
    real, n = P.atomic_write, [0]
    def full(f, data, mode=None):
        n[0] += 1
        if n[0] > 2: raise P.PersistlabError(f'cannot write {f}: No space left on device')
        return real(f, data, mode)
    monkeypatch.setattr(P, 'atomic_write', full)
    with pytest.raises(P.PersistlabError, match='No space left'): P.fix_env(b)
    assert 0 < len(names(b, str(a))) < 5  # half done
    monkeypatch.setattr(P, 'atomic_write', real)
    rows = P.fix_env(b)
    assert rows and rows[0][1] == 'moved' and f'from {a}' in rows[0][2], rows
    assert names(b, str(a)) == [] and P.fix_env(b) == []
    assert subprocess.run([b/'bin/plab-hello'], capture_output=True, text=True).stdout == f'hello from {b}\n'
