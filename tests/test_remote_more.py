"Remote storage keeps everything: the packages wheelhouse, code-server's cache, what a restore replaced; and `.ssh` compares as restored"
import os, re, sys, json, time, signal, hashlib, subprocess, tarfile, io, threading
from http.server import HTTPServer, BaseHTTPRequestHandler
from pathlib import Path
import pytest
from conftest import snapshot
from test_remote import s3, box, _ipython, _exe  # moto's S3 server on 127.0.0.1 (module scope), an engine call as a box, a real IPython
from test_packages import VM, CLI, make_wheel, code_path, backdate
from persistlab.procs import free_port

def _keys(url, env, prefix=''):
    "The keys under remote storage `url`, listed from a fresh process (this one's environment stays the test's)"
    r = subprocess.run([sys.executable, '-c', f'from persistlab.remote import remote; print("\\n".join(x["key"] for x in remote({url!r}).ls({prefix!r})))'],
                       capture_output=True, text=True, env={**os.environ, **env, 'PYTHONPATH': code_path()}, check=True)
    return set(r.stdout.split())

# ---------------------------------------------------------------------------------------------------------------- packages
@pytest.fixture(scope='module')
def pk(tmp_path_factory):
    "Small real wheels, and an image: a venv that sees this Python's packages as the image's (persistlab runs in it, as in a kernel)"
    base = tmp_path_factory.mktemp('pkremote')
    files = base/'files'; files.mkdir()
    make_wheel(files, 'plab-b', '1.0', {'plab_b/__init__.py': 'v = "b1.0"\n'})
    make_wheel(files, 'plab-e', '1.0', {'plab_e/__init__.py': 'v = "e1.0"\n'})
    make_wheel(files, 'plab-d', '2.0', {'plab_d/__init__.py': 'v = "d2.0"\n'})
    make_wheel(files, 'plab-big', '1.0', {'plab_big/__init__.py': 'v = "big1.0"\n', 'plab_big/data.bin': os.urandom(2 << 20)})
    image = base/'image'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(image)], check=True)
    # this Python's packages (persistlab's own needs, pip) seen from the image, whether this Python is a venv or not
    site = next(image.glob('lib/python*/site-packages'))
    (site/'runner.pth').write_text(''.join(f'{p}\n' for p in sys.path if p.endswith('site-packages') and os.path.isdir(p)))
    backdate(image)
    return dict(files=files, image=image)

def _vm(tmp_path, name, pk):
    return VM(tmp_path/name, tmp_path/'no-storage', pk['image'])

def _install(vm, pk, *names):
    "What the user pip-installed on the box (uv here: pip reads every package this Python sees, which takes seconds)"
    vm.run('uv', 'pip', 'install', '-q', '--python', vm.py, '--no-index', '--find-links', pk['files'], *names)

def _cli(vm, url, env, *args, check=True, **kw):
    "`persistlab-packages ARGS --python VM --to URL` on box `vm`, offline: no index answers"
    dead = f'http://127.0.0.1:{free_port()}/simple'
    return vm.run(sys.executable, CLI, *args, '--python', vm.py, '--to', url, check=check,
                  **{**env, 'PERSISTLAB_STORAGE': '', 'PIP_INDEX_URL': dead, 'PIP_FIND_LINKS': '', **kw})

def test_packages_kept_in_a_bucket_come_back_offline_on_a_fresh_box(pk, s3, tmp_path):
    "Box 1 saves its pip installs to s3://; a second save uploads only the new wheel; a fresh box whose index is gone "
    "installs them from the bucket with `persistlab-restore --to URL`, and `--list` names them"
    env, bucket = s3; url = f's3://{bucket}/pk-{tmp_path.name}'
    vm1 = _vm(tmp_path, 'vm1', pk)
    _install(vm1, pk, 'plab-b', 'plab-e')
    r = _cli(vm1, url, env, '--save', PIP_FIND_LINKS=pk['files'])
    assert re.search(r'plab-b +saved', r.stdout) and 'storage  current: generation 1: 2 new wheels uploaded' in r.stdout, r.stdout + r.stderr
    first = {k for k in _keys(url, env, 'wheelhouse') if '/plab_' in k}
    assert len(first) == 2 and all(re.fullmatch(r'wheelhouse/[\w.-]+/[0-9a-f]{64}/plab_[be]-1\.0-py3-none-any\.whl', k) for k in first), first
    r = _cli(vm1, url, env, '--save')  # nothing new: nothing fetched, nothing uploaded, no new record
    assert 'already saved' in r.stdout and 'uploaded' not in r.stdout and _keys(url, env, 'gen') == {'gen/0000000001.json'}, r.stdout
    _install(vm1, pk, 'plab-d')
    r = _cli(vm1, url, env, '--save', PIP_FIND_LINKS=pk['files'])
    new = {k for k in _keys(url, env, 'wheelhouse') if '/plab_' in k} - first
    assert [k.rsplit('/', 1)[1] for k in new] == ['plab_d-2.0-py3-none-any.whl'] and '1 new wheels uploaded' in r.stdout, r.stdout
    # a fresh box: its start command restores snapshots (none here) and the packages, for the Python that runs it
    vm2 = _vm(tmp_path, 'vm2', pk)
    script = tmp_path/'restore_cli.py'; script.write_text('from persistlab.cli import restore_cli\nrestore_cli()\n')
    r = vm2.run(vm2.py, script, '--to', url, **{**env, 'PERSISTLAB_STORAGE': '', 'PIP_INDEX_URL': f'http://127.0.0.1:{free_port()}/simple'})
    assert vm2.imports('plab_b', 'plab_e', 'plab_d') == ['b1.0', 'e1.0', 'd2.0'], r.stdout + r.stderr
    assert re.search(r'plab-d +installed: 2\.0 from the wheelhouse', r.stdout) and str(vm2.home) not in r.stdout, r.stdout
    r = _cli(vm2, url, env, '--list')
    assert re.search(r'plab-b +package 1\.0', r.stdout) and 'wheel missing' not in r.stdout and f'in {url}/wheelhouse/' in r.stdout, r.stdout
    # forgetting one goes to the bucket's record: the next box is not given it
    r = _cli(vm2, url, env, '--forget', 'plab-e')
    assert re.search(r'plab-e +forgotten', r.stdout) and 'generation 3' in r.stdout, r.stdout
    # a third box whose storage is set (PERSISTLAB_STORAGE): `%load_ext` installs them into the kernel's Python, once
    vm3 = _vm(tmp_path, 'vm3', pk)
    cells = '%load_ext persistlab\nimport plab_b, plab_d; print("GOT", plab_b.v, plab_d.v)\n%persist --list\n%persist --packages\nexit\n'
    r = subprocess.run([str(vm3.py), '-m', 'IPython', '--no-banner', '--simple-prompt', '--colors=NoColor'], input=cells, text=True,
                       capture_output=True, timeout=180, cwd=vm3.home, env=vm3.env(**{**env, 'PERSISTLAB_STORAGE': url, 'IPYTHONDIR': vm3.home/'.ipython'}))
    assert 'GOT b1.0 d2.0' in r.stdout and re.search(r'plab-d +installed', r.stdout), r.stdout + r.stderr
    assert re.search(r'plab-b +package 1\.0', r.stdout) and 'plab-e' not in r.stdout, r.stdout  # --list: the bucket's packages
    # its save takes the bucket's wheels of what it has (no index answers here): nothing new, no new record
    assert re.search(r'plab-d +already saved', r.stdout) and _keys(url, env, 'gen') == {f'gen/000000000{i}.json' for i in (1, 2, 3)}, r.stdout + r.stderr
    # `%persist --packages -r --to URL` on a fresh box remembers the storage, as every `--to` that worked: the next save goes there
    vm4 = _vm(tmp_path, 'vm4', pk)
    r = _cli(vm4, url, env, '--restore')
    assert vm4.imports('plab_b', 'plab_d') == ['b1.0', 'd2.0'] and (vm4.home/'.persistlab/storage').read_text().strip() == url, r.stdout + r.stderr

def test_sigkill_during_a_wheelhouse_upload_leaves_the_previous_packages(pk, s3, tmp_path):
    "A save killed after its first new wheel is uploaded: the bucket's record still names the previous packages, a "
    "fresh box installs those, and the next save finishes the job"
    env, bucket = s3; url = f's3://{bucket}/kill-{tmp_path.name}'
    vm1 = _vm(tmp_path, 'vm1', pk)
    _install(vm1, pk, 'plab-b')
    _cli(vm1, url, env, '--save', PIP_FIND_LINKS=pk['files'])
    _install(vm1, pk, 'plab-e', 'plab-big')
    r = _cli(vm1, url, env, '--save', check=False, PIP_FIND_LINKS=pk['files'], PERSISTLAB_FAILPOINT='wheel-uploaded')
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    assert len({k for k in _keys(url, env, 'wheelhouse') if '/plab_' in k}) == 2 and _keys(url, env, 'gen') == {'gen/0000000001.json'}
    vm2 = _vm(tmp_path, 'vm2', pk)
    _cli(vm2, url, env, '--restore')
    assert vm2.imports('plab_b') == ['b1.0'] and vm2.run(vm2.py, '-c', 'import plab_e', check=False).returncode != 0
    _cli(vm1, url, env, '--save', PIP_FIND_LINKS=pk['files'])  # the next save finishes the job
    _cli(vm2, url, env, '--restore')
    assert vm2.imports('plab_b', 'plab_e', 'plab_big') == ['b1.0', 'e1.0', 'big1.0']

# ---------------------------------------------------------------------------------------------------------------- .ssh state
def test_a_restored_ssh_is_in_sync_until_edited(s3, sb, box):
    "`.ssh` saved with loose modes is restored tightened (700/600/644): untouched it is 'in sync' on any VM of that home "
    "(the restore-once marker is gone after a reboot) and a save uploads nothing; an edit is 'changed here'"
    from persistlab.remote import remote_persist, remote_restore, remote_status, remote_save
    env, bucket = s3; url = f's3://{bucket}/ssh-{sb.base.name}'
    s = sb.home/'.ssh'; s.mkdir(mode=0o755); os.chmod(s, 0o755)
    for n, t in (('id_ed25519', 'private\n'), ('id_ed25519.pub', 'ssh-ed25519 AAAA me\n'), ('config', 'Host gh\n')):
        (s/n).write_text(t); os.chmod(s/n, 0o644)
    box(remote_persist, ['.ssh'], url, sb.home, env={**env, 'PERSISTLAB_RUN': sb.base/'vm1'})
    box2 = sb.base/'box2'; box2.mkdir()
    box(remote_restore, url, box2, env={**env, 'PERSISTLAB_RUN': sb.base/'vm2'})
    assert [oct(p.stat().st_mode & 0o777) for p in (box2/'.ssh', box2/'.ssh/id_ed25519', box2/'.ssh/id_ed25519.pub')] == ['0o700', '0o600', '0o644']
    state = lambda run: {r[0]: r[1] for r in box(remote_status, url, box2, env={**env, 'PERSISTLAB_RUN': sb.base/run})}['.ssh']
    assert state('vm2') == 'in sync' and state('vm2-rebooted') == 'in sync'
    assert [r[1] for r in box(remote_save, None, url, box2, env={**env, 'PERSISTLAB_RUN': sb.base/'vm2-rebooted'}) if r[0] == '.ssh'] == ['unchanged']
    (box2/'.ssh/config').write_text('Host gh\n  User git\n')
    assert state('vm2') == state('vm2-rebooted') == 'changed here: --save uploads it'

# ---------------------------------------------------------------------------------------------------------------- code-server
from test_codeserver import CS, needs_cs, _Files

def _release(version):
    "A release tarball shaped like coder's whose bin/code-server runs the real code-server the tests use (npm's has no bundled node)"
    from persistlab.fetch import machine_arch
    name = f'code-server-{version}-linux-{machine_arch()}'; b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w:gz') as t:
        for n, data, mode in ((f'{name}/bin/code-server', f'#!/bin/sh\nexec {CS} "$@"\n'.encode(), 0o755),
                              (f'{name}/lib/bulk.bin', os.urandom(1 << 20), 0o644)):
            ti = tarfile.TarInfo(n); ti.size = len(data); ti.mode = 0o755 if n.endswith('code-server') else 0o644
            t.addfile(ti, io.BytesIO(data))
    return b.getvalue()

@needs_cs
def test_code_server_comes_back_on_a_fresh_box_without_a_download(s3, sb, box, monkeypatch):
    "Box 1: `%codeserver` on s3:// downloads the release (checked), keeps it and the settings in the bucket; the user's "
    "setting is saved at --stop. Box 2, with the download server gone: code-server starts from the bucket's copy, with that setting"
    import requests
    from persistlab import codeserver as C, procs
    from persistlab.codeserver import VERSION
    from persistlab.storage import Storage
    from persistlab.platforms import detect
    env, bucket = s3; url = f's3://{bucket}/cs-{sb.base.name}'; st = Storage(url, '--to', 'snapshot')
    tgz = _release(VERSION); _Files.files = {'/cs.tgz': tgz}; _Files.hits = []
    srv = HTTPServer(('127.0.0.1', 0), _Files); threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.delenv('PERSISTLAB_CODE_SERVER', raising=False); monkeypatch.delenv('CODE_SERVER_PASSWORD', raising=False)
    monkeypatch.setenv('PATH', '/usr/bin:/bin')  # no code-server on it
    run = lambda home, n: {**env, 'HOME': home, 'PERSISTLAB_RUNTIME': sb.base/f'rt{n}', 'PERSISTLAB_RUN': sb.base/f'vm{n}',
                           'PERSISTLAB_CODE_SERVER_URL': f'http://127.0.0.1:{srv.server_port}/cs.tgz',
                           'PERSISTLAB_CODE_SERVER_SHA256': hashlib.sha256(tgz).hexdigest()}
    plat = lambda home: detect(env=dict(HOME=str(home), PERSISTLAB_PLATFORM='local'))
    try:
        cs = box(C.start_code_server, sb.home, provider='none', storage=st, platform=plat(sb.home), env=run(sb.home, 1))
        assert _Files.hits == ['/cs.tgz'] and re.search(r'uploaded', repr(cs)), repr(cs)
        user = sb.home/'.persistlab/code-server/code-server/user-data/User'; user.mkdir(parents=True, exist_ok=True)
        (user/'settings.json').write_text('{"editor.fontSize": 17}\n')  # what the user set in the editor
        r = box(C.stop_code_server, sb.home, env=run(sb.home, 1))
        assert re.search(r'persistlab/code-server/code-server +uploaded', repr(r)), repr(r)
        srv.shutdown(); srv.server_close()  # the download is gone for good
        box2 = sb.base/'box2'; box2.mkdir()
        cs = box(C.start_code_server, box2, provider='none', storage=st, platform=plat(box2), env=run(box2, 2))
        port = box(procs.get, 'code-server', box2, env=run(box2, 2)).info['port']
        assert requests.get(f'http://127.0.0.1:{port}/healthz', timeout=10).status_code == 200 and _Files.hits == ['/cs.tgz']
        assert (box2/'.persistlab/code-server/code-server/user-data/User/settings.json').read_text() == '{"editor.fontSize": 17}\n'
        assert 'restored' in repr(cs) and 'uploaded' not in repr(cs), repr(cs)
        r = box(C.stop_code_server, box2, env=run(box2, 2))
        assert re.search(r'code-server +stopped', repr(r)) and 'cache/code-server-' not in repr(r), repr(r)  # the release: uploaded once
    finally:
        for h, n in ((sb.home, 1), (sb.base/'box2', 2)): box(procs.stop_all, h, env=run(h, n))

# ---------------------------------------------------------------------------------------------------------------- backups
def test_what_a_restore_replaced_survives_the_box(s3, sb, box):
    "A restore over a box's own `.cfg` backs it up on the box and in the storage's backups/; with the box gone (its "
    "~/.persistlab with it), `--list` names the backup and `persistlab-restore --to URL --backup KEY` puts it back"
    from persistlab.remote import remote_persist, remote_restore, remote_status
    env, bucket = s3; url = f's3://{bucket}/bk-{sb.base.name}'
    (sb.home/'.cfg').mkdir(); (sb.home/'.cfg/app.toml').write_text('saved = 1\n')
    box(remote_persist, ['.cfg'], url, sb.home, env={**env, 'PERSISTLAB_RUN': sb.base/'vm1'})
    b2 = sb.base/'box2'; (b2/'.cfg').mkdir(parents=True); (b2/'.cfg/app.toml').write_text('only on box 2\n')
    two = {**env, 'PERSISTLAB_RUN': sb.base/'vm2'}
    rows = box(remote_restore, url, b2, env=two)
    assert (b2/'.cfg/app.toml').read_text() == 'saved = 1\n'
    up = [r for r in rows if r[1] == 'backup uploaded']
    assert len(up) == 1 and re.search(r'backups/\d{8}T\d+\S*/\.cfg\.tar\.(zst|gz)', up[0][2]), rows
    key = re.search(r'--backup (\S+)`', up[0][2]).group(1)
    import shutil; shutil.rmtree(b2/'.persistlab')  # the box's own folder, as a new box of that home would not have it
    st = {r[0]: r for r in box(remote_status, url, b2, env=two)}
    assert st['backups'][1] == '1 in storage' and key in st['backups'][2], st
    r = sb.run(_exe('persistlab-restore'), '--to', url, '--backup', key, home=b2, **{**two, 'PERSISTLAB_STORAGE': ''})
    assert (b2/'.cfg/app.toml').read_text() == 'only on box 2\n', r.stdout + r.stderr
    st = {r[0]: r for r in box(remote_status, url, b2, env=two)}
    assert st['.cfg'][1].startswith('changed here') and st['backups'][1] == '2 in storage', st  # the restored copy was backed up in turn
    r = sb.run(_exe('persistlab-restore'), '--to', url, '--backup', 'backups/x/../../gen/0000000001.json', home=b2, check=False, **two)
    assert r.returncode == 1 and 'not a backup' in r.stderr, r.stderr
