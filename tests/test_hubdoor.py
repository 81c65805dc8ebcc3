"""The JupyterHub door, end to end: a real JupyterHub (configurable-http-proxy, dummy login, two users), user A's
`%sshsetup --server` in a real IPython with the server's environment, and the real OpenSSH client on the "laptop" with
`persistlab-connect` as ProxyCommand: login, scp both ways, sftp, rsync, `ssh -L` to a port on A's server, `ssh -R`; B's token and
no token are refused; no TCP port listens for the door; the token is in no process's argv"""
import os, sys, re, pwd, time, shutil, signal, tomllib, tempfile, subprocess, textwrap
from pathlib import Path
import pytest, requests
from persistlab import procs
from test_hub import Hub, CHP, TOKEN
from test_ssh import keygen, SSHD

ROOT = Path(__file__).resolve().parent.parent
A, B = 'ada', 'bob'
pytestmark = [pytest.mark.skipif(not CHP.exists(), reason=f'needs configurable-http-proxy at {CHP}: tools/install-chp.sh (run by .ci/run)'),
              pytest.mark.skipif(not shutil.which('rsync'), reason='needs rsync (apt, run by .ci/run)')]

def entry_points_dist(d) -> Path:
    "A distribution on the servers' path whose entry points are the checkout's pyproject table (the editable install may be older)"
    eps = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['entry-points']['jupyter_serverproxy_servers']
    di = Path(d)/'persistlab_door_under_test-0.0.dist-info'; di.mkdir(parents=True)
    (di/'METADATA').write_text('Metadata-Version: 2.1\nName: persistlab-door-under-test\nVersion: 0.0\n')
    (di/'entry_points.txt').write_text('[jupyter_serverproxy_servers]\n' + ''.join(f'{k} = {v}\n' for k, v in eps.items()))
    return Path(d)

@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    base = tmp_path_factory.mktemp('hubdoor')
    # the door's files under the login user's own home: the path chain sshd's StrictModes accepts (not /tmp)
    rt = Path(tempfile.mkdtemp(dir=pwd.getpwuid(os.geteuid()).pw_dir, prefix='.persistlab-test-hubdoor-')); os.chmod(rt, 0o700)
    eps = entry_points_dist(base/'eps')
    pp = os.pathsep.join(x for x in (os.environ.get('PYTHONPATH', ''), str(eps)) if x)
    h = Hub(base/'hub', True, env=dict(PYTHONPATH=pp, PERSISTLAB_RUNTIME=str(rt), PERSISTLAB_SSHD=SSHD), users=(A, B), servers=(A,))  # B logs in and has a token; B's server is not needed
    h.rt = rt
    try: yield h.start()
    finally:
        h.stop()
        for pid in ours(rt): os.kill(pid, signal.SIGKILL)  # the door's listener and sshd -i, found by this test's own folder
        shutil.rmtree(rt, ignore_errors=True)

def ours(rt) -> list:
    "Pids of the door's listener started for this test's runtime folder, and of everything under it (sshd -i, its sessions)"
    kids, top = {}, []
    for p in Path('/proc').glob('[0-9]*'):
        try:
            argv, env = (p/'cmdline').read_bytes(), (p/'environ').read_bytes()
            ppid = int((p/'stat').read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError): continue
        kids.setdefault(ppid, []).append(int(p.name))
        if b'persistlab.hubdoor import serve' in argv and f'PERSISTLAB_RUNTIME={rt}'.encode() in env: top.append(int(p.name))
    out, todo = [], list(top)
    while todo: pid = todo.pop(); out.append(pid); todo += kids.get(pid, [])
    return out

def user_token(hub, user) -> str:
    r = hub.api('post', f'users/{user}/tokens', json=dict(note='ssh door test', expires_in=600, scopes=[f'access:servers!user={user}']))
    assert r.status_code in (200, 201), r.text
    return r.json()['token']

def listening_inodes() -> set:
    "Socket inodes of every TCP socket in LISTEN state (IPv4 and IPv6)"
    out = set()
    for f in ('/proc/net/tcp', '/proc/net/tcp6'):
        for l in Path(f).read_text().splitlines()[1:]:
            x = l.split()
            if x[3] == '0A': out.add(x[9])
    return out

def socket_inodes(pid) -> set:
    out = set()
    for fd in Path(f'/proc/{pid}/fd').glob('*'):
        try: t = os.readlink(fd)
        except OSError: continue
        if t.startswith('socket:['): out.add(t[8:-1])
    return out

def test_ssh_through_the_hub_door(hub, tmp_path):
    laptop = tmp_path/'laptop'; (laptop/'bin').mkdir(parents=True)
    key = keygen(laptop/'id_door')
    # `persistlab-connect` as pip installs it: a console script on PATH running persistlab.connect:main
    (laptop/'bin/persistlab-connect').write_text(f'#!/bin/sh\nexec {sys.executable} -c "import sys; from persistlab.connect import main; sys.exit(main())" "$@"\n')
    os.chmod(laptop/'bin/persistlab-connect', 0o755)

    # user A, in a real IPython with A's server environment: the cell the docs print
    env_a = {**hub.server_env(A), 'PYTHONPATH': hub.env['PYTHONPATH']}
    cell = (f'%load_ext persistlab\n%sshsetup --server --authorized-keys {laptop}/id_door.pub\n'
            'import os; from persistlab.hubdoor import door_served; print("SERVED", door_served(os.environ))\n')
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=cell, env=env_a, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert 'ProxyCommand persistlab-connect --hub ' + hub.url + ' --user ada' in out and 'not served yet' not in out, out
    assert 'SERVED True' in out, out  # the server's own proxy has the entry (read from the entry point at its start)
    block = re.search(r'(Host hub-ada\n(?:  .+\n)+)', out).group(1)
    assert 'token' not in block.replace('persistlab-connect', '')
    cfg = laptop/'ssh_config'; cfg.write_text(block)

    tok_a, tok_b = user_token(hub, A), user_token(hub, B)
    (laptop/'.config/persistlab').mkdir(parents=True)
    tf = laptop/'.config/persistlab/hub-token'; tf.write_text(tok_a + '\n'); os.chmod(tf, 0o600)
    lenv = dict(PATH=f"{laptop/'bin'}:{os.environ['PATH']}", HOME=str(laptop), PYTHONPATH=os.environ.get('PYTHONPATH', ''), LANG='C.UTF-8')
    opts = ['-F', str(cfg), '-i', str(key), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new',
            '-o', f"UserKnownHostsFile={laptop/'known_hosts'}", '-o', 'ConnectTimeout=30']
    ssh_e = 'ssh ' + ' '.join(opts)
    def run(*argv, env=None, timeout=60, input=None):
        return subprocess.run(list(map(str, argv)), env=env or lenv, capture_output=True, text=True, timeout=timeout, input=input)

    # login runs a command, on A's server (the session sees A's server environment)
    r = run('ssh', *opts, 'hub-ada', 'echo "door-ok $JUPYTERHUB_USER"')
    assert r.returncode == 0 and r.stdout.strip() == 'door-ok ada', r.stderr
    assert (laptop/'known_hosts').read_text().startswith('hub-ada ')  # HostKeyAlias: this server's key, apart from other users'

    # scp both ways, sftp, rsync (absolute paths: the test's login user is the machine's, its home is not a sandbox)
    srv = tmp_path/'on-server'; srv.mkdir()
    (laptop/'up.txt').write_text('from the laptop\n')
    assert run('scp', *opts, laptop/'up.txt', f'hub-ada:{srv}/up.txt').returncode == 0
    assert (srv/'up.txt').read_text() == 'from the laptop\n'
    (srv/'down.txt').write_text('from the server\n')
    assert run('scp', *opts, f'hub-ada:{srv}/down.txt', laptop/'down.txt').returncode == 0
    assert (laptop/'down.txt').read_text() == 'from the server\n'
    r = run('sftp', *opts, '-b', '-', 'hub-ada', input=f'put {laptop}/up.txt {srv}/sftp.txt\nget {srv}/down.txt {laptop}/sftp-down.txt\n')
    assert r.returncode == 0 and (srv/'sftp.txt').read_text() == 'from the laptop\n' and (laptop/'sftp-down.txt').exists(), r.stderr
    data = laptop/'data'; (data/'sub').mkdir(parents=True); (data/'sub/a.bin').write_bytes(os.urandom(200_000)); (data/'b.txt').write_text('b\n')
    r = run('rsync', '-a', '-e', ssh_e, f'{data}/', f'hub-ada:{srv}/data/')
    assert r.returncode == 0 and (srv/'data/sub/a.bin').read_bytes() == (data/'sub/a.bin').read_bytes(), r.stderr

    # ssh -L to a port served on A's server (127.0.0.1 there), reached from the laptop
    www = tmp_path/'www'; www.mkdir(); (www/'index.html').write_text('served on the server\n')
    wport, lport = procs.free_port(), procs.free_port()
    web = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1', str(wport), '--directory', str(www)],
                           env=env_a, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    fwd = subprocess.Popen(['ssh', *opts, '-N', '-o', 'ExitOnForwardFailure=yes', '-L', f'{lport}:127.0.0.1:{wport}', 'hub-ada'],
                           env=lenv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        t = time.monotonic()
        while not (procs.port_open(lport) and procs.port_open(wport)) and fwd.poll() is None and time.monotonic() - t < 30: time.sleep(0.2)
        assert requests.get(f'http://127.0.0.1:{lport}/index.html', timeout=20).text == 'served on the server\n'

        # while connected: the door's processes listen on no TCP port, and no process has a token in its argv
        door = [p for p in ours(hub.rt)]
        kinds = {pid: b' '.join(Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')) for pid in door}
        assert any(b'hubdoor import serve' in v for v in kinds.values()) and any(v.startswith(b'sshd') or b' -i ' in v for v in kinds.values()), kinds
        listen = listening_inodes()
        assert not any(socket_inodes(pid) & listen for pid in door), kinds
        sock = next(Path(a.decode()) for v in kinds.values() if b'hubdoor import serve' in v for a in v.split(b' ') if a.endswith(b'/socket'))
        assert oct(sock.stat().st_mode & 0o777) == '0o600' and oct(sock.parent.stat().st_mode & 0o777) == '0o700'
        for p in Path('/proc').glob('[0-9]*'):
            try: argv = (p/'cmdline').read_bytes()
            except OSError: continue
            assert tok_a.encode() not in argv and tok_b.encode() not in argv and TOKEN.encode() not in argv, p
    finally:
        for pr in (fwd, web): os.killpg(pr.pid, signal.SIGTERM); pr.wait(10)

    # ssh -R: a port on the laptop, reached from A's server (sshd -i listens on the server's loopback for that session only)
    lweb = subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1', str(wport), '--directory', str(laptop)],
                            env=lenv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    rport = procs.free_port()
    rev = subprocess.Popen(['ssh', *opts, '-N', '-o', 'ExitOnForwardFailure=yes', '-R', f'{rport}:127.0.0.1:{wport}', 'hub-ada'],
                           env=lenv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t = time.monotonic()
        while not (procs.port_open(rport) and procs.port_open(wport)) and rev.poll() is None and time.monotonic() - t < 30: time.sleep(0.2)
        assert requests.get(f'http://127.0.0.1:{rport}/up.txt', timeout=20).text == 'from the laptop\n'
    finally:
        for pr in (rev, lweb): os.killpg(pr.pid, signal.SIGTERM); pr.wait(10)

    # B's token is refused (by A's server's login, before anything of ours), and so is no token at all
    r = run('ssh', *opts, 'hub-ada', 'echo should-not-run', env={**lenv, 'PERSISTLAB_HUB_TOKEN': tok_b})
    assert r.returncode != 0 and 'should-not-run' not in r.stdout and 'persistlab-connect: the hub refused the token' in r.stderr, r.stderr
    assert tok_b not in r.stderr
    tf.unlink()
    r = run('ssh', *opts, 'hub-ada', 'echo should-not-run')
    assert r.returncode != 0 and 'no hub token' in r.stderr, r.stderr
    import websocket
    for h in ([], [f'Authorization: token {tok_b}']):
        with pytest.raises(websocket.WebSocketBadStatusException) as x:
            websocket.create_connection(f"ws{hub.url[4:]}/user/{A}/persistlab-sshd/", header=h, suppress_origin=True, timeout=20)
        assert x.value.status_code in (302, 401, 403)
    # a token file others can read is refused before anything is sent
    tf.write_text(tok_a + '\n'); os.chmod(tf, 0o644)
    r = run('ssh', *opts, 'hub-ada', 'true')
    assert r.returncode != 0 and 'chmod 600' in r.stderr and tok_a not in r.stderr

    # %sshsetup --stop closes the door: the next connection gets nothing (A's own token, mode fixed)
    os.chmod(tf, 0o600)
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input='%load_ext persistlab\n%sshsetup --status\n%sshsetup --stop\n%sshsetup --status\n', env=env_a,
                       capture_output=True, text=True, timeout=120)
    assert re.search(r'door +open: 1 authorized key', r.stdout) and re.search(r'door +closed', r.stdout), r.stdout + r.stderr
    r = run('ssh', *opts, 'hub-ada', 'echo should-not-run')
    assert r.returncode != 0 and 'should-not-run' not in r.stdout
    assert 'door is closed' in (hub.rt/'hubdoor/door.log').read_text()

@pytest.mark.skipif(os.geteuid() != 0 or not (shutil.which('unshare') and shutil.which('setpriv')), reason='needs root, unshare and setpriv (util-linux)')
def test_a_normal_users_sshd_takes_the_doors_files(tmp_path, monkeypatch):
    """A hub's servers run as a normal user (jovyan, its password locked as useradd leaves it, /etc/shadow unreadable to it):
    that user's own `sshd -i` reads the files `open_door` wrote, and the key logs in. (A private mount namespace holds the
    user; the test hub above runs its servers as root.)"""
    from persistlab.hubdoor import open_door, door_dir
    from persistlab.platforms import detect
    base = Path(tempfile.mkdtemp(prefix='plab-door-')); os.chmod(base, 0o755)  # not under pytest's 0700 root folder
    try:
        home = base/'home'; home.mkdir(); key = keygen(base/'k')
        monkeypatch.setenv('PERSISTLAB_RUNTIME', str(home/'.persistlab/run'))
        env = dict(JUPYTERHUB_SERVICE_PREFIX='/user/jovyan/', JUPYTERHUB_USER='jovyan', HOME=str(home), PERSISTLAB_PLATFORM='jupyterhub')
        open_door(keys=(base/'k.pub').read_text(), install=False, strict_modes=False, env=env, home=home, platform=detect(env))
        d = door_dir(home); sshd = (d/'sshd').read_text().strip()
        subprocess.run(['chown', '-R', '4242:4242', str(home)], check=True)
        (base/'passwd').write_text(Path('/etc/passwd').read_text() + f'jovyan:x:4242:4242::{home}:/bin/sh\n'); os.chmod(base/'passwd', 0o644)
        (base/'shadow').write_text(Path('/etc/shadow').read_text() + 'jovyan:!:19000:0:99999:7:::\n'); os.chmod(base/'shadow', 0o640)
        proxy = f"setpriv --reuid=4242 --regid=4242 --clear-groups {sshd} -i -e -f {d/'sshd_config'}"
        script = (f"mount --bind {base/'passwd'} /etc/passwd && mount --bind {base/'shadow'} /etc/shadow && exec ssh -F /dev/null -i {key} "
                  f"-o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                  f"-o 'ProxyCommand={proxy}' jovyan@door 'id -u; echo $HOME'")
        r = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script], capture_output=True, text=True, timeout=60)
        assert r.stdout.split() == ['4242', str(home)], r.stdout + r.stderr
    finally: shutil.rmtree(base, ignore_errors=True)
