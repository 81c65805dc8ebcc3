"SSH keys and persistlab's sshd against the real OpenSSH ssh, ssh-keygen and sshd on 127.0.0.1"
import os, sys, re, json, stat, shutil, socket, subprocess, threading, time, textwrap, getpass
from http.server import HTTPServer, BaseHTTPRequestHandler
from pathlib import Path
import pytest
from conftest import Sandbox, start_sshd, WAIT_FOR_CLIENT
from persistlab.platforms import detect
from persistlab import procs, ssh
from persistlab.ssh import SSHError, setup_keys, start_server, stop_server, server_status, github_check, import_key
from persistlab.tunnel import sshd_opener

SSHD = shutil.which('sshd') or '/usr/sbin/sshd'
pytestmark = pytest.mark.skipif(not Path(SSHD).exists() or not shutil.which('ssh'),
                                reason='needs OpenSSH (apt-get install openssh-server openssh-client; .ci/run installs them)')

@pytest.fixture
def env(sb, monkeypatch):
    monkeypatch.setenv('PERSISTLAB_RUNTIME', str(sb.base/'run'))
    monkeypatch.setenv('HOME', str(sb.home))
    sb.plat = detect(env=dict(HOME=str(sb.home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(sb.storage)))
    yield sb
    procs.stop_all()

def keygen(path):
    if Path(path).exists(): return path
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(path)], check=True)
    return path

def ssh_cmd(key, port, *cmd, extra=()):
    user = getpass.getuser()  # sshd checks the login against the passwd entry of whoever runs the tests
    argv = ['ssh', '-F', '/dev/null', '-i', str(key), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
            '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=5',
            '-p', str(port), *extra, f'{user}@127.0.0.1', *cmd]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)

def serve(sb, **kw):
    "start_server on 127.0.0.1 with a fresh client key authorized"
    key = keygen(sb.base/'client_key')
    s = start_server(procs.free_port(), keys=(sb.base/'client_key.pub').read_text(), listen='127.0.0.1', install=False,
                     home=sb.home, storage=sb.storage, platform=sb.plat, strict_modes=False, **kw)
    return s, key

# --- client keys ---
def test_generate_modes_and_no_private_key_in_output(env):
    k = setup_keys(home=env.home, check=False, platform=env.plat)
    priv = (env.home/'.ssh/id_ed25519').read_text()
    m = lambda p: stat.S_IMODE(p.stat().st_mode)
    assert m(env.home/'.ssh') == 0o700 and m(env.home/'.ssh/id_ed25519') == 0o600 and m(env.home/'.ssh/id_ed25519.pub') == 0o644
    body = ''.join(priv.splitlines()[1:-1])
    shown = repr(k) + k._repr_markdown_()
    assert 'PRIVATE KEY' not in shown and body[:40] not in shown and k.pub in shown
    assert 'https://github.com/settings/keys' in shown

def test_existing_keys_kept_and_modes_fixed(env):
    d = env.home/'.ssh'; d.mkdir(mode=0o755); keygen(d/'id_ed25519')
    before = (d/'id_ed25519').read_bytes()
    os.chmod(d, 0o775); os.chmod(d/'id_ed25519', 0o644); (d/'config').write_text('Host x\n'); os.chmod(d/'config', 0o666)
    k = setup_keys(home=env.home, check=False, platform=env.plat)
    assert (d/'id_ed25519').read_bytes() == before and ('id_ed25519', 'kept', 'existing key') in list(k)
    fixed = dict((r[0], r[2]) for r in k)['.ssh']
    assert '.ssh 775->700' in fixed and 'id_ed25519 644->600' in fixed and 'config 666->600' in fixed

def test_import_from_path_and_upload_bytes(env, tmp_path):
    src = keygen(tmp_path/'laptop_key'); os.chmod(src, 0o644)
    k = import_key(src, env.home)
    assert k.name == 'id_ed25519' and k.read_bytes() == src.read_bytes() and stat.S_IMODE(k.stat().st_mode) == 0o600
    assert (env.home/'.ssh/id_ed25519.pub').read_text().split()[1] == (tmp_path/'laptop_key.pub').read_text().split()[1]
    other = keygen(tmp_path/'other')
    import_key(other.read_bytes(), env.home)  # an upload: bytes; the previous key is kept aside, not overwritten
    assert list((env.home/'.ssh').glob('id_ed25519.persistlab-*'))
    with pytest.raises(SSHError, match='not a private key'): import_key(b'-----BEGIN NOTHING-----\n', env.home)

def test_import_from_persisted_storage_and_save_back(env):
    from persistlab.persist import persist
    (env.home/'.ssh').mkdir(); persist('.ssh', home=env.home, platform=env.plat)
    r = setup_keys(home=env.home, check=False, platform=env.plat, storage=env.storage)  # generates: saved back
    assert (env.storage/'.ssh/id_ed25519').read_bytes() == (env.home/'.ssh/id_ed25519').read_bytes()
    assert '.ssh' in [x[0] for x in r if x[1] == 'saved to storage']

def test_git_identity(env):
    setup_keys(home=env.home, check=False, platform=env.plat, name='Ada L', email='ada@example.com')
    assert 'name = Ada L' in (env.home/'.gitconfig').read_text() and 'ada@example.com' in (env.home/'.gitconfig').read_text()

# --- the GitHub check, against a stand-in sshd that answers like github.com ---
@pytest.fixture
def fake_github(env):
    "A stand-in that answers like github.com: a real sshd whose forced command prints GitHub's greeting"
    pub = (env.home/'.ssh/id_ed25519.pub').read_text() if (env.home/'.ssh/id_ed25519.pub').exists() else ''
    p, port, hostpub, _ = start_sshd(env.base/'gh', 'echo "Hi octocat! You\'ve successfully authenticated, but GitHub does not provide shell access." >&2; exit 1', pub)
    yield dict(port=port, known=f"[127.0.0.1]:{port} {' '.join(hostpub.split()[:2])}\n", ak=env.base/'gh/ak', proc=p)
    p.terminate(); p.wait(10)

def test_github_check_pinned(env, fake_github):
    setup_keys(home=env.home, check=False, platform=env.plat)
    fake_github['ak'].write_text((env.home/'.ssh/id_ed25519.pub').read_text())
    kw = dict(host='127.0.0.1', port=fake_github['port'], user=getpass.getuser())
    assert github_check(env.home, known_hosts=fake_github['known'], **kw) == 'octocat'
    k = setup_keys(home=env.home, platform=env.plat, known_hosts=fake_github['known'], **kw)
    assert k.github == 'octocat' and ('github', 'authenticated', 'as octocat') in list(k)
    # the real GitHub keys pinned: the stand-in is not GitHub, so no connection is trusted
    with pytest.raises(SSHError, match="did not present GitHub's published host key"): github_check(env.home, **kw)

def test_github_check_offline_is_bounded(env):
    setup_keys(home=env.home, check=False, platform=env.plat)
    t = time.monotonic()
    with pytest.raises(SSHError, match='cannot reach'): github_check(env.home, host='127.0.0.1', port=procs.free_port(), timeout=3)
    assert time.monotonic() - t < 15

# --- incoming SSH ---
def test_sshd_accepts_key_refuses_others_and_stops(env):
    s, key = serve(env)
    r = ssh_cmd(key, s.port, 'echo', 'ok'); assert r.stdout.strip() == 'ok', r.stderr
    wrong = keygen(env.base/'wrong')
    r = ssh_cmd(wrong, s.port, 'echo', 'ok'); assert r.returncode == 255 and 'Permission denied' in r.stderr
    r = ssh_cmd(key, s.port, 'echo', 'ok', extra=('-o', 'PreferredAuthentications=password,keyboard-interactive', '-o', 'PubkeyAuthentication=no'))
    assert r.returncode == 255 and 'Permission denied (publickey)' in r.stderr  # no password methods offered at all
    assert s.fingerprint.startswith('SHA256:') and f'-p {s.port}' in s.command and re.match(r'Host local-[0-9a-f]{6}\n', s.config_block)
    pid = procs.get('sshd').pid
    assert 'running' in repr(server_status())
    stop_server()
    assert not Path(f'/proc/{pid}').exists() and not procs.port_open(s.port) and procs.running() == []

def test_host_fingerprint_stable_across_sessions(env):
    s1, key = serve(env); stop_server()
    s2, _ = serve(env)
    assert s1.fingerprint == s2.fingerprint and (env.storage/'sshd/ssh_host_ed25519_key').exists()

def test_session_environment_in_logins(env, monkeypatch):
    monkeypatch.setenv('LD_LIBRARY_PATH', '/usr/local/cuda/lib64:/opt/x'); monkeypatch.setenv('PAPERSPACE_FQDN', 'abc.gradient')
    monkeypatch.setenv('NGROK_AUTHTOKEN', 'tok-SECRET-123')
    s, key = serve(env)
    r = ssh_cmd(key, s.port, 'echo "$LD_LIBRARY_PATH|$PAPERSPACE_FQDN|${NGROK_AUTHTOKEN:-none}"')
    assert r.stdout.strip() == '/usr/local/cuda/lib64:/opt/x|abc.gradient|none', r.stderr
    assert 'tok-SECRET' not in (Path(env.base/'run'/'sshd_config')).read_text()

class _Keys(BaseHTTPRequestHandler):
    keys = {}
    def do_GET(self):
        k = self.path.strip('/').removesuffix('.keys')
        if k not in self.keys: self.send_response(404); self.end_headers(); return
        b = self.keys[k].encode(); self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass

@pytest.fixture
def fake_github_http(env):
    srv = HTTPServer(('127.0.0.1', 0), _Keys); t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield f'http://127.0.0.1:{srv.server_port}'
    srv.shutdown()

def test_github_keys_loaded_404_and_empty(env, fake_github_http):
    key = keygen(env.base/'gh_user_key')
    _Keys.keys = {'octo': (env.base/'gh_user_key.pub').read_text(), 'empty': ''}
    s = start_server(procs.free_port(), github='octo', listen='127.0.0.1', install=False, home=env.home, storage=env.storage,
                     platform=env.plat, github_base=fake_github_http, strict_modes=False)
    assert ssh_cmd(key, s.port, 'echo', 'ok').stdout.strip() == 'ok'
    stop_server()
    for user, msg in (('nobody', "no user 'nobody'"), ('empty', 'has no public keys')):
        with pytest.raises(SSHError, match=msg):
            start_server(procs.free_port(), github=user, listen='127.0.0.1', install=False, home=env.home, platform=env.plat, github_base=fake_github_http)
    assert procs.running() == []

def test_bad_input_is_clear_and_leaves_nothing_running(env, monkeypatch):
    pub = keygen(env.base/'k').with_suffix('.pub').read_text()
    kw = dict(listen='127.0.0.1', install=False, home=env.home, platform=env.plat, strict_modes=False)
    with pytest.raises(SSHError, match=r'not valid public keys: line 2 \(ssh-ed25519 AAAAnotbase64'):
        start_server(procs.free_port(), keys=pub + 'ssh-ed25519 AAAAnotbase64!!! me@x\n', **kw)
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0)); busy.listen(); p = busy.getsockname()[1]
        with pytest.raises(SSHError, match=f'port {p} is in use'): start_server(p, keys=pub, **kw)
    for bad, msg in (('abc', 'not a number'), (70000, 'out of range'), (0, 'out of range')):
        with pytest.raises(ValueError, match=msg): start_server(bad, keys=pub, **kw)
    monkeypatch.setenv('PERSISTLAB_SSHD', '/nonexistent/sshd')
    with pytest.raises(SSHError, match='sshd is not installed'): start_server(procs.free_port(), keys=pub, **kw)
    with pytest.raises(SSHError, match='say who may log in'): start_server(procs.free_port(), **kw)
    assert procs.running() == [] and not (env.base/'run/sshd.json').exists()

def test_risky_platform_needs_opt_in(env):
    p = detect(env=dict(HOME=str(env.home), PERSISTLAB_PLATFORM='kaggle', PERSISTLAB_STORAGE=str(env.storage)))
    with pytest.raises(SSHError, match=r'Kaggle stops sessions that run sshd.*no paid tier.*--accept-risk'):
        start_server(procs.free_port(), keys='x', home=env.home, platform=p)

def test_stop_touches_only_our_sshd(env, fake_github):
    s, key = serve(env)
    other = subprocess.Popen(['sleep', '60'], start_new_session=True)
    procs.stop_all()
    assert fake_github['proc'].poll() is None and other.poll() is None  # a foreign sshd and process live on
    other.kill(); other.wait()

def test_magic_in_real_ipython(env, strict_ok):
    pub = keygen(env.base/'k').with_suffix('.pub')
    code = textwrap.dedent(f'''
        %load_ext persistlab
        %sshsetup --no-check
        %sshsetup --server --port abc
        %sshsetup --server --port 70000
        %sshsetup --server --listen 127.0.0.1 --port {procs.free_port()} --authorized-keys {pub} --alias gpu-box --forward-agent
        %sshsetup --status
        %reload_ext persistlab
        %sshsetup --status
        %unload_ext persistlab
        ''').strip() + '\nexit\n'
    e = env.env(PERSISTLAB_RUNTIME=strict_ok/'run2', PERSISTLAB_SSHD=SSHD)  # StrictModes on: a path chain sshd accepts
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=code, env=e, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    priv = (env.home/'.ssh/id_ed25519').read_text()
    assert 'ssh-ed25519 ' in out and ''.join(priv.splitlines()[1:-1])[:40] not in out and 'PRIVATE' not in out
    assert "port 'abc' is not a number" in out and 'port 70000 is out of range' in out
    assert re.search(r'sshd +running: pid \d+, port \d+, key-only, 1 authorized', out) and 'Host gpu-box' in out and 'ForwardAgent yes' in out
    # %reload_ext (new code, say after an upgrade) stops nothing: the load finds sshd still running; %unload_ext stops what persistlab started
    assert re.search(r'persistlab: still running: sshd \(port \d+\)', out) and len(re.findall(r'sshd +running: pid \d+', out)) == 3, out  # started, status, status after the reload
    assert out.count('persistlab: stopped') == 1 and 'persistlab: stopped sshd' in out, out
    assert procs.running(env.home) == [] and not (strict_ok/'run2/sshd.json').exists()

def test_sshsetup_tunnel_ngrok_outlives_the_kernel_and_its_new_address_is_shown(env, strict_ok, monkeypatch):
    "`%sshsetup --server --tunnel ngrok` in a notebook: ngrok comes back at a new address, the cell shows it; the kernel ends, ngrok runs on"
    from test_cells import run_cells, text, STANDINS
    pub = keygen(env.base/'k').with_suffix('.pub')
    e = {**os.environ, **env.env(PERSISTLAB_RUNTIME=strict_ok/'run', PERSISTLAB_SSHD=SSHD, PERSISTLAB_NGROK=STANDINS/'ngrok',
                                 NGROK_AUTHTOKEN='test-authtoken', JUPYTER_PLATFORM_DIRS=1)}
    try:
        out = run_cells(['%load_ext persistlab',
                         f'%sshsetup --server --listen 127.0.0.1 --port {procs.free_port()} --authorized-keys {pub} --tunnel ngrok',
                         textwrap.dedent('''
                            import os, time
                            from persistlab import procs
                            pr = next(p for p in procs.records() if p.name.startswith('tunnel-'))
                            os.killpg(pr.pgid, 9)  # ngrok's agent dies; the supervisor starts another, at a new address
                            t0 = time.monotonic()
                            while time.monotonic() - t0 < 30 and not ((q := procs.get(pr.name)) and q.pid != pr.pid and q.info.get('url') != pr.info['url']): time.sleep(0.1)
                            time.sleep(2); print('BACK', q.info['url'])''')], e)
        new = text(out[2]).split()[-1]
        assert text(out[2]).startswith('BACK tcp://'), text(out[2])
        host, port = new[6:].rsplit(':', 1)
        assert f'ssh -p {port} ' in out[1][0]['data']['text/plain'] and f'HostName {host}' in out[1][0]['data']['text/plain'], out[1]
        monkeypatch.setenv('PERSISTLAB_RUNTIME', str(strict_ok/'run'))
        pr = next(p for p in procs.records() if p.name.startswith('tunnel-'))
        assert pr.alive() and pr.info['url'] == new  # the kernel is gone; ngrok runs on
    finally:
        monkeypatch.setenv('PERSISTLAB_RUNTIME', str(strict_ok/'run')); procs.stop_all()

def test_generate_with_passphrase_typed_at_the_prompt(env):
    pw = 'pass-SECRET-8271'
    seen = []
    def watch():  # look for the passphrase in every process's argv while ssh-keygen runs
        for _ in range(200):
            for c in Path('/proc').glob('[0-9]*/cmdline'):
                try:
                    if pw.encode() in c.read_bytes(): seen.append(c)
                except OSError: pass
            time.sleep(0.01)
    t = threading.Thread(target=watch); t.start()
    k = setup_keys(home=env.home, check=False, platform=env.plat, passphrase=pw)
    t.join()
    key = env.home/'.ssh/id_ed25519'
    assert ('id_ed25519', 'generated', 'ed25519, with a passphrase') in list(k) and not seen
    r = subprocess.run(['ssh-keygen', '-y', '-P', '', '-f', str(key)], capture_output=True, text=True)
    assert r.returncode != 0  # encrypted: an empty passphrase does not open it
    assert pw not in repr(k) + k._repr_markdown_()

def test_keys_come_from_storage_before_generating(env, tmp_path):
    (env.storage/'.ssh').mkdir(parents=True); src = keygen(env.storage/'.ssh/id_ed25519')
    k = setup_keys(home=env.home, check=False, platform=env.plat, storage=env.storage)
    assert (env.home/'.ssh/id_ed25519').read_bytes() == src.read_bytes() and k[1][1] == 'imported'

def test_server_through_a_tunnel_prints_the_public_address(env):
    "sshd plus a reverse tunnel through another SSH server: the printed command goes through the tunnel, and works"
    rp, rport, _, ck = start_sshd(env.base/'relay', WAIT_FOR_CLIENT)
    try:
        key = keygen(env.base/'laptop')
        s = start_server(procs.free_port(), keys=(env.base/'laptop.pub').read_text(), listen='127.0.0.1', install=False,
                         home=env.home, storage=env.storage, platform=env.plat, strict_modes=False,
                         tunnel=sshd_opener(f'ssh://{getpass.getuser()}@127.0.0.1:{rport}', identity=ck))
        assert s.host == '127.0.0.1' and ('tunnel', f'ssh://{getpass.getuser()}@127.0.0.1:{rport}', f'127.0.0.1:{s.port}') in list(s)
        assert ssh_cmd(key, s.port, 'echo', 'through-the-tunnel').stdout.strip() == 'through-the-tunnel'  # the relay's port
    finally:
        from persistlab.tunnel import close_tunnel
        close_tunnel('all'); procs.stop_all(); rp.terminate(); rp.wait(10)

def test_new_key_refreshes_an_archived_ssh_snapshot(env):
    "On Colab-like platforms .ssh is a snapshot: a new key is saved back into it"
    from persistlab.archive import archive_persist
    (env.home/'.ssh').mkdir(); (env.home/'.ssh/config').write_text('Host x\n')
    colab = detect(env=dict(HOME=str(env.home), PERSISTLAB_PLATFORM='colab', PERSISTLAB_STORAGE=str(env.storage)))
    archive_persist('.ssh', home=env.home, platform=colab)
    r = setup_keys(home=env.home, check=False, platform=colab)
    assert ('.ssh', 'saved to storage') in [(x[0], x[1]) for x in r]
    (snap,) = (env.storage/'snapshots').glob('.ssh.tar.*')  # zstd, or gzip where the machine has no zstd
    listed = subprocess.run(['tar', '-tf', str(snap)], capture_output=True, text=True).stdout
    assert '.ssh/id_ed25519' in listed

# --- the real world: fresh root VMs, odd paths, IPv6, StrictModes, the laptop side ---
import pwd
STANDINS = Path(__file__).parent/'standins'

@pytest.mark.skipif(os.geteuid() != 0, reason='replicas (mount namespaces with an empty /run) need root')
def test_fresh_root_vm_without_run_sshd(replica, tmp_path):
    "A fresh Colab VM (root, empty /root, no /run/sshd, Drive not mounted): the cell starts sshd and the laptop's real ssh logs in"
    vm = replica('colab')
    assert vm.sh('test ! -e /run/sshd && echo fresh').stdout.strip() == 'fresh'
    laptop = keygen(tmp_path/'laptop'); port = procs.free_port()  # the laptop's key (a host file the VM can read under /tmp)
    ssh = (f'ssh -F /dev/null -i {laptop} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no '
           f'-o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -p {port} root@127.0.0.1')
    c, login, stop = vm.run([f'%load_ext persistlab\n%sshsetup --server --accept-risk --listen 127.0.0.1 --port {port} --authorized-keys {laptop}.pub',
                             f"!{ssh} 'echo \"logged in as $(id -un), /run/sshd $(stat -c %a /run/sshd)\"'", '%sshsetup --stop'])
    assert c.ok and re.search(r'Host colab-[0-9a-f]{6}', c.out), c
    alias = re.search(r'Host (colab-[0-9a-f]{6})', c.out)[1]  # the printed links open the config block's Host in each editor
    for name, scheme in (('VS Code', 'vscode'), ('Cursor', 'cursor'), ('VSCodium', 'vscodium')):
        assert f'{name}: {scheme}://vscode-remote/ssh-remote+{alias}/root\n' in c.out, c
    assert 'jeanp413.open-remote-ssh' in c.out, c  # what VSCodium needs for it
    assert 'logged in as root, /run/sshd 755' in login.out, login
    assert 'stopped' in stop.out and not procs.port_open(port), stop
    assert not vm.p('/content/drive').exists()  # nothing created where Drive gets mounted

@pytest.fixture
def strict_ok(monkeypatch):
    "A runtime dir under the login user's own home: the path chain StrictModes accepts (unlike anything under /tmp)"
    import tempfile
    d = Path(tempfile.mkdtemp(dir=pwd.getpwuid(os.geteuid()).pw_dir, prefix='.persistlab-test-'))
    os.chmod(d, 0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)

def test_space_in_paths_env_ending_in_backslash_and_ipv6(tmp_path, monkeypatch):
    "A home and storage with spaces, session variables with a trailing backslash and quotes, and --listen :: all work"
    sb = Sandbox(tmp_path/'my dir'); monkeypatch.setenv('PERSISTLAB_RUNTIME', str(sb.base/'run time')); monkeypatch.setenv('HOME', str(sb.home))
    monkeypatch.setenv('LD_LIBRARY_PATH', 'C:\\odd\\'); monkeypatch.setenv('PAPERSPACE_NOTE', 'say "hi" # not a comment')
    plat = detect(env=dict(HOME=str(sb.home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(sb.storage)))
    key = keygen(sb.base/'client_key')
    try:
        s = start_server(procs.free_port(), keys=(sb.base/'client_key.pub').read_text(), listen='::', install=False,
                         home=sb.home, storage=sb.storage, platform=plat, strict_modes=False)
        assert f'ListenAddress [::]:{s.port}' in (sb.base/'run time/sshd_config').read_text()
        user = pwd.getpwuid(os.geteuid()).pw_name
        r = subprocess.run(['ssh', '-F', '/dev/null', '-i', str(key), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
                            '-o', 'UserKnownHostsFile=/dev/null', '-p', str(s.port), f'{user}@::1', 'echo "$LD_LIBRARY_PATH|$PAPERSPACE_NOTE"'],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == 'C:\\odd\\|say "hi" # not a comment', r.stderr
        assert (sb.storage/'sshd/ssh_host_ed25519_key').exists()  # the host key went to the storage path with a space
    finally: procs.stop_all()

def test_strict_modes_refusal_is_reported_not_running(env, strict_ok, monkeypatch):
    "sshd never says 'running' while StrictModes would refuse every key; with a sound path chain the key logs in"
    key = keygen(env.base/'client_key'); pub = (env.base/'client_key.pub').read_text()
    kw = dict(keys=pub, listen='127.0.0.1', install=False, home=env.home, storage=env.storage, platform=env.plat)
    with pytest.raises(SSHError, match=r'sshd would refuse every key: /tmp is .*keep the home and its .ssh outside /tmp') as e:
        start_server(procs.free_port(), **kw)
    assert 'chmod' not in str(e.value)  # never advise opening up or closing /tmp for everyone
    assert procs.running() == []
    monkeypatch.setenv('PERSISTLAB_RUNTIME', str(strict_ok/'run'))
    s = start_server(procs.free_port(), **kw)  # StrictModes on (the default)
    assert 'StrictModes yes' in (strict_ok/'run/sshd_config').read_text()
    assert ssh_cmd(key, s.port, 'echo', 'ok').stdout.strip() == 'ok'
    os.chmod(strict_ok, 0o770); stop_server()
    try:
        with pytest.raises(SSHError, match=f'{strict_ok} is drwxrwx---.*chmod go-w {strict_ok}'): start_server(procs.free_port(), **kw)
    finally: os.chmod(strict_ok, 0o700)

def test_laptop_side_alias_host_identity_and_vscode(env):
    "The printed block: alias from platform + host key id (or --alias), reachable HostName, the key type's file, home folder link"
    rsa = env.base/'laptop_rsa'; subprocess.run(['ssh-keygen', '-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', str(rsa)], check=True)
    s = start_server(procs.free_port(), keys=(env.base/'laptop_rsa.pub').read_text(), listen='127.0.0.1', install=False, home=env.home,
                     storage=env.storage, platform=env.plat, strict_modes=False, forward_agent=True)
    home = pwd.getpwuid(os.geteuid()).pw_dir
    assert re.fullmatch(r'local-[0-9a-f]{6}', s.alias) and s.host == '127.0.0.1' and s.host != socket.gethostname()
    assert '  IdentityFile ~/.ssh/id_rsa\n' in s.config_block and 'ForwardAgent yes' in s.config_block
    assert s.vscode == f'vscode://vscode-remote/ssh-remote+{s.alias}{home}'
    assert s.links == {e: f'{x}://vscode-remote/ssh-remote+{s.alias}{home}' for e, x in (('VS Code', 'vscode'), ('Cursor', 'cursor'), ('VSCodium', 'vscodium'))}
    md = s._repr_markdown_()
    assert all(f'[{e}]({u})' in md and f'{e}: {u}' in repr(s) for e, u in s.links.items()), md
    stop_server()
    other = Sandbox(env.base/'other'); other.plat = detect(env=dict(HOME=str(other.home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(other.storage)))
    s2 = start_server(procs.free_port(), keys=(env.base/'laptop_rsa.pub').read_text(), listen='127.0.0.1', install=False, home=other.home,
                      storage=other.storage, platform=other.plat, strict_modes=False)
    assert s2.alias != s.alias and 'ForwardAgent yes' not in s2.config_block and 'ForwardAgent' in repr(s2)  # offered, with its risk
    stop_server()
    s3 = start_server(procs.free_port(), keys=(env.base/'laptop_rsa.pub').read_text(), listen='127.0.0.1', install=False, home=env.home,
                      storage=env.storage, platform=env.plat, strict_modes=False, alias='gpu-box')
    assert s3.alias == 'gpu-box' and s3.config_block.startswith('Host gpu-box\n') and s3.alias in s3.vscode
    h, note = ssh.reachable_host('0.0.0.0')
    assert h != socket.gethostname() and (note is None or 'PERSISTLAB_PUBLIC_HOST' in note)

def test_ssh_from_anywhere_through_cloudflared(env, monkeypatch, tmp_path):
    "--tunnel cloudflared: the printed config block (ProxyCommand cloudflared access ssh) logs the laptop in through the tunnel"
    bindir = tmp_path/'bin'; bindir.mkdir(); (bindir/'cloudflared').symlink_to(STANDINS/'cloudflared')
    reg = tmp_path/'cf'; reg.mkdir()
    monkeypatch.setenv('PATH', f"{bindir}:{os.environ['PATH']}"); monkeypatch.setenv('FAKE_CF_REGISTRY', str(reg))
    monkeypatch.delenv('PERSISTLAB_CLOUDFLARED', raising=False)
    key = keygen(env.base/'laptop')
    try:
        s = start_server(procs.free_port(), keys=(env.base/'laptop.pub').read_text(), listen='127.0.0.1', install=False, home=env.home,
                         storage=env.storage, platform=env.plat, strict_modes=False, tunnel=sshd_opener('cloudflared'), identity_file=str(key))
        assert s.host.endswith('.trycloudflare.com') and 'ProxyCommand cloudflared access ssh --hostname %h' in s.config_block
        assert 'ProxyCommand "C:\\Program Files (x86)\\cloudflared\\cloudflared.exe" access ssh --hostname %h' in s.windows_block and 'On Windows' in s._repr_markdown_()
        cfg = tmp_path/'laptop_ssh_config'; cfg.write_text(s.config_block)
        r = subprocess.run(['ssh', '-F', str(cfg), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
                            s.alias, 'echo through-cloudflared'], capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == 'through-cloudflared', r.stderr
        assert any('ssh://localhost:' in ' '.join(p.argv) for p in procs.running() if p.name.startswith('tunnel-'))
        stopped = stop_server()
        assert ('tunnel', 'stopped', 'cloudflared') in [tuple(r) for r in stopped] and procs.running() == []  # no tunnel left to nothing
    finally:
        from persistlab.tunnel import close_tunnel
        close_tunnel('all'); procs.stop_all()

def test_opt_in_remembered_in_storage_and_revoked(env):
    "A paid user opts in once: the next call (another cell, session or VM on that storage) needs no flag; revoke forgets it"
    k = detect(env=dict(HOME=str(env.home), PERSISTLAB_PLATFORM='paperspace', PERSISTLAB_STORAGE=str(env.storage)))
    assert 'free-tier' in k.policy and 'paid plans' in k.policy
    pub = keygen(env.base/'k').with_suffix('.pub').read_text()
    kw = dict(keys=pub, listen='127.0.0.1', install=False, home=env.home, storage=env.storage, strict_modes=False)
    with pytest.raises(SSHError, match='--accept-risk'): start_server(procs.free_port(), platform=k, **kw)
    start_server(procs.free_port(), platform=k, accept_risk=True, **kw); stop_server()
    assert (env.storage/'persistlab-accepted-risk').read_text().startswith('paperspace\n')
    fresh = detect(env=dict(HOME=str(env.base/'new-vm-home'), PERSISTLAB_PLATFORM='paperspace', PERSISTLAB_STORAGE=str(env.storage)))
    start_server(procs.free_port(), platform=fresh, **kw); stop_server()  # no flag this time
    assert fresh.revoke_risk() and not (env.storage/'persistlab-accepted-risk').exists()
    with pytest.raises(SSHError, match='--accept-risk'): start_server(procs.free_port(), platform=fresh, **kw)
