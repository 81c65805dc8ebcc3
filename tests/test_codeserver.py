"code-server: a real one (npm 4.100.3, installed by .ci/run) started by persistlab; the download path; Jupyter's proxy"
import os, re, sys, io, json, time, shutil, signal, tarfile, hashlib, threading, subprocess
from http.server import HTTPServer, BaseHTTPRequestHandler
from pathlib import Path
import pytest, requests
from persistlab import procs, codeserver as C
from persistlab.fetch import machine_arch
from persistlab.platforms import detect

CS = Path(os.environ.get('PERSISTLAB_TEST_CODE_SERVER', '/opt/persistlab-test/code-server/node_modules/.bin/code-server'))
needs_cs = pytest.mark.skipif(not CS.exists(), reason=f'needs a real code-server at {CS}: tools/install-code-server.sh (run by .ci/run)')

class Env:
    "The test's temp dir (`env/'home'`) and its platform (`env.plat`)"
    def __init__(self, p, plat): self.p, self.plat = p, plat
    def __truediv__(self, x): return self.p/x

@pytest.fixture
def env(tmp_path, monkeypatch):
    for d in ('home', 'storage', 'proj', 'jrt'): (tmp_path/d).mkdir()
    monkeypatch.setenv('HOME', str(tmp_path/'home')); monkeypatch.setenv('PERSISTLAB_RUNTIME', str(tmp_path/'run'))
    monkeypatch.setenv('JUPYTER_RUNTIME_DIR', str(tmp_path/'jrt')); monkeypatch.setenv('PERSISTLAB_CODE_SERVER', str(CS))
    monkeypatch.delenv('CODE_SERVER_PASSWORD', raising=False); monkeypatch.delenv('JUPYTERHUB_SERVICE_PREFIX', raising=False)
    monkeypatch.setenv('PERSISTLAB_GITHUB_API', f'http://127.0.0.1:{procs.free_port()}')  # GitHub's API: not reachable here
    yield Env(tmp_path, detect(env=dict(HOME=str(tmp_path/'home'), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(tmp_path/'storage'))))
    C.stop_code_server(); procs.stop_all()

def group_pids(pgid):
    out = []
    for p in Path('/proc').glob('[0-9]*'):
        try:
            st = (p/'stat').read_text().rsplit(')', 1)[1].split()
            if int(st[2]) == pgid and st[0] != 'Z': out.append(int(p.name))
        except (OSError, ValueError, IndexError): pass
    return out

def cmdlines_with(s):
    hits = []
    for c in Path('/proc').glob('[0-9]*/cmdline'):
        try:
            if s.encode() in c.read_bytes(): hits.append(c)
        except OSError: pass
    return hits

@needs_cs
def test_real_code_server_password_login_workbench_and_stop(env):
    cs = C.start_code_server(env/'proj', provider='none', platform=env.plat)
    port = procs.get('code-server').info['port']; base = f'http://127.0.0.1:{port}'
    assert requests.get(base + '/healthz', timeout=5).status_code == 200
    pw = cs.password()
    assert len(pw) >= 20 and oct(Path(cs.pwfile).stat().st_mode & 0o777) == '0o600'
    s = requests.Session()
    r = s.post(base + '/login', data={'password': 'wrong-' + pw}, allow_redirects=False, timeout=10)
    assert 'code-server-session' not in s.cookies and r.status_code != 302 and 'Incorrect password' in r.text
    r = s.post(base + '/login', data={'password': str(pw)}, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and 'code-server-session' in s.cookies
    r = s.get(base + f"/?folder={env/'proj'}", timeout=20)
    import html
    assert r.status_code == 200 and 'vscode-workbench-web-configuration' in r.text and 'workbench.js' in r.text
    assert str(env/'storage/code-server/user-data') in html.unescape(r.text)  # the workbench runs on storage's settings
    # the password is nowhere but its 0600 files
    shown = repr(cs) + cs._repr_markdown_()
    logs = ''.join(f.read_text(errors='replace') for f in (env/'run').glob('*.log'))
    assert str(pw) not in shown and str(pw) not in logs and cmdlines_with(str(pw)) == []
    assert (env/'storage/code-server/user-data').is_dir()  # settings and extensions live in storage
    pgid = procs.get('code-server').pgid
    assert len(group_pids(pgid)) >= 2  # node and its file watcher
    C.stop_code_server()
    time.sleep(0.3)
    assert group_pids(pgid) == [] and cmdlines_with(str(env/'storage/code-server')) == [] and not procs.port_open(port)

@needs_cs
def test_password_from_secrets_and_no_tunnel_on_colab(env, monkeypatch):
    monkeypatch.setenv('CODE_SERVER_PASSWORD', 'from-the-secrets-layer-123')
    cs = C.start_code_server(env/'proj', platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='colab', PERSISTLAB_STORAGE=str(env/'storage'))))
    assert cs.password() == 'from-the-secrets-layer-123'
    assert "Colab's port proxy carries no websockets" in repr(cs) and procs.running()[0].name == 'code-server'

def fake_release(version='9.9.9'):
    "A release tarball shaped like coder's: code-server-V-linux-ARCH/bin/code-server"
    name = f'code-server-{version}-linux-{machine_arch()}'
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w:gz') as t:
        data = b'#!/bin/sh\necho "fake code-server"\nexit 0\n' + os.urandom(300_000)
        ti = tarfile.TarInfo(f'{name}/bin/code-server'); ti.size = len(data); ti.mode = 0o755
        t.addfile(ti, io.BytesIO(data))
    return name, b.getvalue()

class _Files(BaseHTTPRequestHandler):
    files, hits = {}, []
    def do_GET(self):
        self.hits.append(self.path); body = self.files.get(self.path)
        if body is None: self.send_response(404); self.end_headers(); return
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass

def test_download_progress_checksum_and_cache(env, monkeypatch):
    name, tgz = fake_release(); _Files.files = {'/cs.tgz': tgz}; _Files.hits = []
    srv = HTTPServer(('127.0.0.1', 0), _Files); threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{srv.server_port}/cs.tgz'
    monkeypatch.delenv('PERSISTLAB_CODE_SERVER'); monkeypatch.setenv('PATH', '/usr/bin:/bin')
    with pytest.raises(C.CodeServerError, match='does not match'):
        C.code_server_bin(env/'storage', url=url, sha256='f' * 64, version='9.9.9')
    assert not (env/'storage/cache'/name).exists() and not list((env/'storage/cache').glob('*.tar.gz'))
    code = (f"from persistlab import codeserver as C; print(C.code_server_bin({str(env/'storage')!r}, url={url!r}, "
            f"sha256={hashlib.sha256(tgz).hexdigest()!r}, version='9.9.9'))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'PATH': '/usr/bin:/bin'})
    b = Path(r.stdout.strip())
    assert b == env/'storage/cache'/name/'bin/code-server' and os.access(b, os.X_OK), r.stderr
    assert 'code-server' in r.stderr and '100%' in r.stderr  # tqdm's progress bar
    n = len(_Files.hits)
    assert C.code_server_bin(env/'storage', url=url, version='9.9.9') == b and len(_Files.hits) == n  # next session: cached
    srv.shutdown()

@pytest.fixture
def jupyter(env):
    "A real Jupyter server with jupyter-server-proxy, on 127.0.0.1 with a token"
    pytest.importorskip('jupyter_server_proxy', reason='.ci/run installs jupyter-server-proxy')
    port, token = procs.free_port(), 'test-token-7f3a'
    argv = [sys.executable, '-m', 'jupyter_server', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}', '--no-browser',
            f'--IdentityProvider.token={token}', '--ServerApp.open_browser=False', f"--ServerApp.root_dir={env/'proj'}"]
    if os.geteuid() == 0: argv.append('--allow-root')
    p = subprocess.Popen(argv, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=open(env/'jupyter.log', 'w'), start_new_session=True)
    for _ in range(300):
        if procs.port_open(port) and list((env/'jrt').glob('jpserver-*.json')): break
        time.sleep(0.1)
    else: raise AssertionError((env/'jupyter.log').read_text()[-2000:])
    yield dict(port=port, token=token)
    os.killpg(p.pid, signal.SIGTERM)
    try: p.wait(15)
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL)

def socket_of_code_server():
    "The --socket path of the code-server jupyter-server-proxy started (from its command line)"
    for c in Path('/proc').glob('[0-9]*/cmdline'):
        try: a = c.read_bytes().split(b'\0')
        except OSError: continue
        if b'--socket' in a and any(b'code-server' in x for x in a): return Path(a[a.index(b'--socket') + 1].decode())
    return None

def connect_as_nobody(sock):
    "Another local user opens the socket: the exit code and what it printed"
    code = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({str(sock)!r}); s.sendall(b'GET /healthz HTTP/1.0\\r\\n\\r\\n'); print(s.recv(100))"
    return subprocess.run([shutil.which('runuser') or '/usr/sbin/runuser', '-u', 'nobody', '--', '/usr/bin/python3', '-c', code], capture_output=True, text=True, timeout=30)

@needs_cs
def test_served_through_jupyter_server_proxy_on_a_private_socket(env, jupyter):
    "%codeserver under a Jupyter that has persistlab's entry point: Jupyter's login in front, a unix socket behind"
    from urllib.parse import quote
    cs = C.start_code_server(env/'proj', platform=env.plat)
    base = f"http://127.0.0.1:{jupyter['port']}/code-server/"
    assert cs.url == f"{base}?folder={quote(str(env/'proj'))}" and "through Jupyter's proxy" in repr(cs) and procs.running() == []
    h = {'Authorization': f"token {jupyter['token']}"}
    assert requests.get(base + 'healthz', headers=h, timeout=120).status_code == 200
    assert requests.get(base + 'healthz', allow_redirects=False, timeout=10).status_code in (302, 403)  # no Jupyter login, no code-server
    assert "served by Jupyter's proxy" in repr(C.code_server_status())
    sock = socket_of_code_server()
    assert sock and sock.is_socket() and oct(sock.parent.stat().st_mode & 0o777) == '0o700', sock
    if os.geteuid() == 0:  # another local user cannot reach it (root can, as root can do anything)
        r = connect_as_nobody(sock)
        assert r.returncode != 0 and 'PermissionError' in r.stderr and 'HTTP' not in r.stdout, (r.stdout, r.stderr)
    info = requests.get(f"http://127.0.0.1:{jupyter['port']}/server-proxy/servers-info", headers=h, timeout=10).json()
    cs_info = [x for x in info['server_processes'] if x['name'] == 'code-server'][0]
    assert cs_info['launcher_entry']['title'] == 'VS Code' and cs_info['launcher_entry']['icon_url']
    icon = requests.get(f"http://127.0.0.1:{jupyter['port']}/{cs_info['launcher_entry']['icon_url'].lstrip('/')}", headers=h, timeout=10)
    assert icon.status_code == 200 and b'<svg' in icon.content  # code-server's icon, not a plain letter

@needs_cs
def test_magic_in_real_ipython(env):
    code = f"""
%load_ext persistlab
%codeserver --port abc
%codeserver -p none --folder {env/'proj'}
%codeserver --status
%codeserver --stop
%codeserver --status
"""
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=code.strip() + '\nexit\n', env={**os.environ, 'PERSISTLAB_PLATFORM': 'local'}, capture_output=True, text=True, timeout=180)
    out = r.stdout + r.stderr
    assert "port 'abc' is not a number" in out and re.search(r'code-server +running: pid \d+, 127\.0\.0\.1:\d+', out), out
    assert 'code-server  stopped' in out and 'code-server  not running' in out and 'Traceback' not in out
    pw = (env/'run/code-server.password').read_text().strip()
    assert pw not in out and procs.running() == []

def test_download_checked_against_githubs_published_digest(env, monkeypatch):
    "No sha256 given: the one GitHub's releases API publishes for the asset is used, and a mismatch is refused"
    name, tgz = fake_release('9.9.8'); _Files.hits = []
    srv = HTTPServer(('127.0.0.1', 0), _Files); threading.Thread(target=srv.serve_forever, daemon=True).start()
    api = lambda digest: json.dumps({'assets': [{'name': f'{name}.tar.gz', 'digest': f'sha256:{digest}'}]}).encode()
    _Files.files = {'/cs.tgz': tgz, '/repos/coder/code-server/releases/tags/v9.9.8': api('0' * 64)}
    monkeypatch.setenv('PERSISTLAB_GITHUB_API', f'http://127.0.0.1:{srv.server_port}')
    monkeypatch.delenv('PERSISTLAB_CODE_SERVER'); monkeypatch.setenv('PATH', '/usr/bin:/bin')
    url = f'http://127.0.0.1:{srv.server_port}/cs.tgz'
    with pytest.raises(C.CodeServerError, match='does not match the expected 0000'): C.code_server_bin(env/'storage', url=url, version='9.9.8')
    _Files.files['/repos/coder/code-server/releases/tags/v9.9.8'] = api(hashlib.sha256(tgz).hexdigest())
    assert C.code_server_bin(env/'storage', url=url, version='9.9.8').exists()
    srv.shutdown()

@needs_cs
def test_password_with_quotes_and_backslashes(env, monkeypatch):
    "A CODE_SERVER_PASSWORD holding YAML's special characters still starts code-server, and logs in as itself"
    pw = 'a"b\\c: #d\\'
    monkeypatch.setenv('CODE_SERVER_PASSWORD', pw)
    cs = C.start_code_server(env/'proj', provider='none', platform=env.plat)
    base = f"http://127.0.0.1:{procs.get('code-server').info['port']}"
    s = requests.Session()
    r = s.post(base + '/login', data={'password': pw}, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and 'code-server-session' in s.cookies
    assert pw not in repr(cs) + cs._repr_markdown_()

def test_startup_error_never_shows_the_password(env, monkeypatch):
    "code-server that fails quoting its config (as it does on a YAML error): the error shown has no password in it"
    pw = 'pw-with "quotes" and \\ SECRET-731'
    monkeypatch.setenv('CODE_SERVER_PASSWORD', pw)
    fake = env/'code-server'; fake.write_text('#!/bin/sh\necho "error: cannot read config:"; cat "$2"; exit 1\n'); fake.chmod(0o755)
    monkeypatch.setenv('PERSISTLAB_CODE_SERVER', str(fake))
    with pytest.raises(C.CodeServerError) as e: C.start_code_server(env/'proj', provider='none', platform=env.plat)
    assert 'cannot read config' in str(e.value) and 'password: "***"' in str(e.value) and 'SECRET-731' not in str(e.value)

def test_download_with_no_checksum_is_refused_unless_overridden(env, monkeypatch):
    "Nothing pinned and GitHub's API unreachable: refused before downloading, with how to override; the override works"
    name, tgz = fake_release('9.9.7'); _Files.files = {'/cs.tgz': tgz}; _Files.hits = []
    srv = HTTPServer(('127.0.0.1', 0), _Files); threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.delenv('PERSISTLAB_CODE_SERVER'); monkeypatch.setenv('PATH', '/usr/bin:/bin')
    url = f'http://127.0.0.1:{srv.server_port}/cs.tgz'
    with pytest.raises(C.CodeServerError, match='no sha256 to check it against.*offline.*PERSISTLAB_CODE_SERVER_SHA256=.*PERSISTLAB_ALLOW_UNVERIFIED=1'):
        C.code_server_bin(env/'storage', url=url, version='9.9.7')
    assert _Files.hits == [] and not (env/'storage/cache'/name).exists()
    monkeypatch.setenv('PERSISTLAB_ALLOW_UNVERIFIED', '1')
    assert C.code_server_bin(env/'storage', url=url, version='9.9.7').exists() and _Files.hits == ['/cs.tgz']
    srv.shutdown()

def test_bogus_provider_is_one_line_before_any_download(tmp_path):
    "`%codeserver -p bogus` on a machine with no code-server: the valid choices, nothing fetched, nothing started"
    from conftest import Sandbox
    sb = Sandbox(tmp_path)
    bin_ = tmp_path/'bin'; bin_.mkdir(); (bin_/'python').symlink_to(sys.executable)  # a PATH with no code-server on it
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input='%load_ext persistlab\n%codeserver -p bogus\nexit\n', capture_output=True, text=True, timeout=120,
                       env=sb.env(PATH=f'{bin_}:/usr/bin:/bin', PERSISTLAB_RUNTIME=tmp_path/'run',
                                  PERSISTLAB_GITHUB_API=f'http://127.0.0.1:{procs.free_port()}',
                                  PERSISTLAB_CODE_SERVER_URL=f'http://127.0.0.1:{procs.free_port()}/cs.tar.gz'))
    out = r.stdout + r.stderr
    assert shutil.which('code-server', path=f'{bin_}:/usr/bin:/bin') is None and 'PERSISTLAB_CODE_SERVER' not in sb.env()
    assert "unknown provider 'bogus'; valid: none (local only), " in out and 'cloudflared' in out and 'Traceback' not in out, out
    assert not (sb.storage/'cache').exists() and not (sb.home/'.cache/persistlab').exists()  # nothing was downloaded
    assert not (tmp_path/'run').exists() or not list((tmp_path/'run').glob('*.json'))  # nothing was started

def vsix(path, name='hello', publisher='persistlab-test', version='0.0.1') -> Path:
    "A VS Code extension package: a zip holding extension/package.json (the marketplaces are not reachable here)"
    import zipfile
    pkg = dict(name=name, publisher=publisher, version=version, engines={'vscode': '^1.60.0'},
               contributes={'configuration': {'properties': {f'{name}.greeting': {'type': 'string', 'default': 'hi'}}}})
    with zipfile.ZipFile(path, 'w') as z: z.writestr('extension/package.json', json.dumps(pkg))
    return Path(path)

def cs_dirs() -> list:
    "The --user-data-dir and --extensions-dir arguments of the running code-server, from its command line"
    a = Path(f"/proc/{procs.get('code-server').pid}/cmdline").read_bytes().decode().split('\0')
    return [a[a.index('--user-data-dir') + 1], a[a.index('--extensions-dir') + 1]]

@needs_cs
def test_settings_and_extensions_follow_to_the_next_instance(env):
    "An extension installed and a setting changed on one instance are there on the next: a new, empty home, the same storage"
    cs = C.start_code_server(env/'proj', provider='none', platform=env.plat)
    base, s = f"http://127.0.0.1:{procs.get('code-server').info['port']}", requests.Session()  # the user opens it: logs in, the workbench loads
    assert s.post(base + '/login', data={'password': str(cs.password())}, allow_redirects=False, timeout=10).status_code == 302
    assert s.get(base + f"/?folder={env/'proj'}", timeout=20).status_code == 200
    ud, ext = cs_dirs()
    cli = lambda home, *a: subprocess.run([str(CS), '--user-data-dir', ud, '--extensions-dir', ext, *a], capture_output=True, text=True,
                                          timeout=60, env={**os.environ, 'HOME': str(home), 'XDG_CONFIG_HOME': str(home/'.config'),
                                                           'XDG_DATA_HOME': str(home/'.local/share')})
    r = cli(env/'home', '--install-extension', str(vsix(env/'hello.vsix')))  # what the Extensions view does on this server
    assert r.returncode == 0 and 'successfully installed' in r.stdout, r.stdout + r.stderr
    (Path(ud)/'User').mkdir(parents=True, exist_ok=True)
    (Path(ud)/'User/settings.json').write_text('{"hello.greeting": "from the first instance", "editor.fontSize": 17}\n')  # what Settings writes
    C.stop_code_server()

    home2 = env/'home2'; home2.mkdir()  # the next instance: nothing in home, the storage as it was
    plat2 = detect(env=dict(HOME=str(home2), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(env/'storage')))
    C.start_code_server(env/'proj', provider='none', home=home2, platform=plat2)
    assert cs_dirs() == [ud, ext] and Path(ud).is_relative_to(env/'storage'), cs_dirs()
    r = cli(home2, '--list-extensions', '--show-versions')
    assert 'persistlab-test.hello@0.0.1' in r.stdout.split(), r.stdout + r.stderr
    assert json.loads((Path(cs_dirs()[0])/'User/settings.json').read_text())['hello.greeting'] == 'from the first instance'
    C.stop_code_server(home2)
