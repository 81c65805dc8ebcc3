"Other users and processes: a second local account, reused pids, planted modules, hostile provider output, public storage"
import os, sys, re, json, time, pwd, shutil, signal, socket, subprocess, tempfile, threading
from pathlib import Path
import pytest
from persistlab import procs, tunnel as T
from conftest import IS_ROOT, ROOT, wait_for

@pytest.fixture
def rt(tmp_path, monkeypatch):
    monkeypatch.setenv('PERSISTLAB_RUNTIME', str(tmp_path/'run'))
    monkeypatch.setenv('HOME', str(tmp_path/'home')); (tmp_path/'home').mkdir()
    yield tmp_path
    procs.stop_all()

def test_stopping_a_dead_tunnel_spares_the_process_that_reused_its_pid(rt):
    srv = procs.start('sshd', ['sleep', '60'], info=dict(port=8765))
    pr = procs.start('tunnel-8765', ['sleep', '60'], info=dict(port=8765, provider='ssh'))
    os.kill(pr.pid, signal.SIGKILL); os.waitpid(pr.pid, 0)  # the tunnel's ssh died
    # the kernel cannot be made to hand out that pid again on demand: a later session leader under the recorded pid
    # and group is what pid reuse looks like to persistlab
    time.sleep(0.05)  # the kernel counts start times in 10 ms ticks: a pid reused by the wrap-around is far later than that
    other = subprocess.Popen(['sleep', '60'], start_new_session=True)
    try:
        d = json.loads(pr.record.read_text()); d['pid'] = d['pgid'] = other.pid; pr.record.write_text(json.dumps(d))
        procs.stop('sshd')  # stops the server and the tunnel to its port (`%sshsetup --stop`)
        assert not srv.alive()
        assert other.poll() is None  # someone else's program: not signalled
        assert not pr.record.exists()  # the stale record is gone all the same
        d['name'] = 'tunnel-8766'; (rt/'run/tunnel-8766.json').write_text(json.dumps(d))
        T.make_tunnel('localhost.run', 8766).stop()  # a Tunnel's own stop
        assert other.poll() is None and not (rt/'run/tunnel-8766.json').exists()
    finally: other.kill(); other.wait()

# --- another local user: a second real account makes the victim's marker folder first ---
SYS_PY = '/usr/bin/python3'  # this machine's own Python lives under /root (0700): another account runs Debian's
needs_accounts = pytest.mark.skipif(not IS_ROOT or not shutil.which('useradd') or not Path(SYS_PY).exists(),
                                    reason='needs root, useradd and /usr/bin/python3 to make real accounts')

@pytest.fixture
def accounts():
    "Make real local accounts (removed afterwards, with what they left in /tmp)"
    made, base = [], Path(tempfile.mkdtemp(prefix='persistlab-users-')); os.chmod(base, 0o755)
    def make(tag):
        name = f'pl{tag}{os.getpid() % 100000}'
        subprocess.run(['useradd', '-M', '-N', '-s', '/bin/sh', '-d', str(base/name), name], check=True, capture_output=True)
        made.append(name); u = pwd.getpwnam(name)
        h = base/name; h.mkdir(mode=0o700); os.chown(h, u.pw_uid, u.pw_gid)
        return u
    def run(u, code, **env):
        "Run Python `code` as account `u`, in its own home, with a clean environment"
        e = dict(PATH='/usr/bin:/bin', HOME=u.pw_dir, USER=u.pw_name, LANG='C.UTF-8', PYTHONPATH=str(ROOT), **env)
        return subprocess.run(['setpriv', f'--reuid={u.pw_uid}', f'--regid={u.pw_gid}', '--clear-groups', SYS_PY, '-c', code],
                              env=e, cwd=u.pw_dir, capture_output=True, text=True, timeout=60)
    yield make, run
    for n in made:
        uid = pwd.getpwnam(n).pw_uid
        shutil.rmtree(f'/tmp/persistlab-{uid}', ignore_errors=True)
        subprocess.run(['userdel', n], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)

@needs_accounts
def test_another_user_cannot_plant_links_in_the_once_per_vm_folder(accounts, monkeypatch):
    make, run = accounts
    mallory, alice = make('m'), make('a')
    home = Path(alice.pw_dir); storage = home.with_name(home.name + '-keep')  # outside home, as a mounted disk is
    bashrc = home/'.bashrc'; bashrc.write_text('alias ll="ls -l"\n'); (home/'.inputrc').write_text('set bell-style none\n')
    storage.mkdir()
    for p in (bashrc, home/'.inputrc', storage): os.chown(p, alice.pw_uid, alice.pw_gid)
    # mallory makes alice's folder first, open to all, and puts in it what alice will write or read
    d = Path(f'/tmp/persistlab-{alice.pw_uid}')
    from persistlab import archive, packages
    monkeypatch.setenv('PERSISTLAB_RUN', str(d)); monkeypatch.setattr(sys, 'prefix', '/usr')
    marker, pkgs = archive._marker(storage, home), packages._marker(storage)
    r = run(mallory, f'import os; os.mkdir({str(d)!r}); os.chmod({str(d)!r}, 0o777); '
                     f'os.symlink({str(bashrc)!r}, {str(marker)!r}); open({str(pkgs)!r}, "w").close()')
    assert r.returncode == 0, r.stderr
    r = run(alice, 'from persistlab.persist import persist; from persistlab.storage import vm_dir; import os, stat\n'
                   f'print(persist([".inputrc"], to={str(storage)!r}, archive=True))\n'
                   'st = os.lstat(vm_dir()); print("VM", vm_dir(), st.st_uid, oct(stat.S_IMODE(st.st_mode)))')
    assert r.returncode == 0, r.stderr
    assert bashrc.read_text() == 'alias ll="ls -l"\n'  # not rewritten through mallory's link
    vm, uid, mode = re.search(r'^VM (\S+) (\d+) (\S+)$', r.stdout, re.M).groups()
    assert not Path(vm).is_relative_to(d) and int(uid) == alice.pw_uid and mode == '0o700'  # mallory's plant is never read
    assert re.fullmatch(r'\.inputrc\t[0-9a-f]{12}\n', (Path(vm)/marker.name).read_text())  # alice's own marker (with its save id), in her own folder

# --- the generated restore script and the sourced hook block, run by the real sh and bash ---
from persistlab.storage import finish, write_manifest, update_hook, SCRIPT
from persistlab.core import PersistlabError

def test_restore_script_runs_no_python_module_planted_in_its_working_directory(tmp_path):
    storage, home, cwd = tmp_path/'storage', tmp_path/'home', tmp_path/'somewhere'
    for d in (storage, home, cwd): d.mkdir()
    write_manifest(storage, dict(version=1, entries=[], packages=dict(sets={})))  # packages recorded: the script runs Python
    finish(storage)
    for mod in ('persistlab', 'json', 'hashlib'):  # imported by the check, and by persistlab itself
        (cwd/f'{mod}.py').write_text(f'open({str(tmp_path/"PWNED")!r}, "a").write("{mod} ")\n')
    env = dict(PATH=os.path.dirname(sys.executable) + ':/usr/bin:/bin', HOME=str(home), PYTHONPATH=str(ROOT),
               PERSISTLAB_RUN=str(tmp_path/'run'), PERSISTLAB_PLATFORM='local')
    r = subprocess.run(['sh', str(storage/SCRIPT)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert not (tmp_path/'PWNED').exists(), (tmp_path/'PWNED').read_text()
    assert r.returncode == 0, r.stdout + r.stderr

def _hook_env(**kw): return dict(PATH='/usr/bin:/bin', **kw)

@pytest.mark.parametrize('shell', ['bash', 'sh'])
def test_hook_block_sourced_under_set_u_without_home(tmp_path, shell):
    storage = tmp_path/'storage'; storage.mkdir()
    write_manifest(storage, dict(version=1, entries=[dict(path='.local', strategy='link', added='x')])); finish(storage)
    hook = tmp_path/'pre-run.sh'; hook.write_text('set -u\necho before\n')
    update_hook(hook, storage, runtime=True)
    hook.write_text(hook.read_text() + 'echo after\n')
    r = subprocess.run([shell, '-c', f'. {hook}; echo "done $?"'], env=_hook_env(), capture_output=True, text=True, timeout=30)
    assert 'before' in r.stdout and 'after\ndone 0' in r.stdout, r.stdout + r.stderr  # the user's script goes on
    r = subprocess.run([shell, '-c', f'set -u; HOME={tmp_path}/h; . {hook}; echo "RT=$JUPYTER_RUNTIME_DIR"'],
                       env=_hook_env(), capture_output=True, text=True, timeout=30)
    assert f'RT={tmp_path}/h/.persistlab/jupyter-runtime' in r.stdout, r.stdout + r.stderr

def test_storage_path_with_a_newline_is_refused_and_the_hook_stays_one_block(tmp_path):
    from persistlab.persist import persist
    home, hook = tmp_path/'home', tmp_path/'pre-run.sh'; home.mkdir(); (home/'.bashrc').write_text('x\n')
    hook.write_text('#!/usr/bin/env bash\necho mine\n')
    bad = tmp_path/'st\necho injected'
    with pytest.raises(PersistlabError, match='newline'): update_hook(hook, bad)
    with pytest.raises(PersistlabError, match='newline'): persist(['.bashrc'], to=bad, home=home)
    assert not bad.exists() and (home/'.bashrc').read_text() == 'x\n'
    assert hook.read_text() == '#!/usr/bin/env bash\necho mine\n'

def test_restore_script_does_not_copy_through_a_symlinked_ssh_in_storage(tmp_path):
    storage, home, outside = tmp_path/'storage', tmp_path/'home', tmp_path/'elsewhere'
    for d in (storage, home, outside): d.mkdir()
    (outside/'secret').write_text('not yours\n'); os.chmod(outside, 0o755)
    os.symlink(outside, storage/'.ssh')  # someone who can write storage points .ssh anywhere
    write_manifest(storage, dict(version=1, entries=[dict(path='.ssh', strategy='copy', added='x')])); finish(storage)
    r = subprocess.run(['sh', str(storage/SCRIPT)], env=dict(PATH='/usr/bin:/bin', HOME=str(home), PERSISTLAB_NO_PACKAGES='1'),
                       capture_output=True, text=True, timeout=30)
    assert not os.path.lexists(home/'.ssh'), r.stdout  # nothing copied or linked from outside storage
    assert oct(outside.stat().st_mode & 0o777) == '0o755'  # and no chmod through the link
    assert '.ssh' in r.stdout and 'symlink' in r.stdout and r.returncode == 1

# --- tunnels: what is published, and what a provider says ---
from test_tunnel import env, web, STANDINS, needs_sshd
from conftest import start_sshd, WAIT_FOR_CLIENT

def test_tunnel_refuses_a_jupyter_that_answers_without_a_token_in_another_runtime_dir(env, monkeypatch):
    monkeypatch.setenv('FAKE_CF_MODE', 'ok')  # the provider would publish it
    port, jd = procs.free_port(), env/'other-jupyter'
    e = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(jd/'runtime'), 'JUPYTER_CONFIG_DIR': str(jd/'cfg'), 'JUPYTER_DATA_DIR': str(jd/'data'),
         'JUPYTER_NO_CONFIG': '1'}  # a bare server: no extensions to load, it starts in half the time
    srv = subprocess.Popen([sys.executable, '-m', 'jupyter_server', '--ServerApp.token=', '--ServerApp.password=', '--ip=127.0.0.1',
                            f'--port={port}', '--no-browser', '--allow-root', f'--ServerApp.root_dir={env}'],
                           env=e, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(env/'jupyter.log', 'w'), start_new_session=True)
    try:
        assert wait_for(lambda: procs.port_open(port), 60), (env/'jupyter.log').read_text()
        from persistlab.platforms import jupyter_servers
        assert not any(s['port'] == port for s in jupyter_servers())  # this kernel does not find its files
        with pytest.raises(T.TunnelError, match='without a token') as x: T.open_tunnel(port, provider='cloudflared')
        assert '\n' not in str(x.value) and procs.running() == []  # one line, and nothing published
    finally: os.killpg(srv.pid, signal.SIGTERM); srv.wait(15)

HOSTILE = ['a$(touch${IFS}/tmp/persistlab-pwned)b', 'a`id`b', 'a\x1b]0;owned\x07b', 'a;id']

@pytest.mark.parametrize('host', HOSTILE)
def test_hostile_cloudflared_hostname_is_refused_not_printed(env, web, monkeypatch, host):
    monkeypatch.setenv('FAKE_CF_MODE', 'ok'); monkeypatch.setenv('FAKE_CF_HOST', f'{host}.trycloudflare.com')
    with pytest.raises(T.TunnelError) as x: T.open_tunnel(web, provider='cloudflared')
    msg = str(x.value)
    assert 'not a plain' in msg and '\n' not in msg and '\x1b' not in msg and '\x07' not in msg
    assert procs.running() == [] and not any(p.name.startswith('tunnel-') for p in procs.records())  # stopped, nothing in --list
    assert 'no tunnel' in repr(T.tunnels()) or T.tunnels().rows == []

@needs_sshd
def test_hostile_ssh_provider_line_is_refused(env, web, monkeypatch):
    line = "echo 'abc.lhr.life tunneled with tls termination, https://a$(id)`id`.lhr.life'; " + WAIT_FOR_CLIENT
    p, port, _, key = start_sshd(env/'evil', line)
    try:
        h, _, u, r, pat = T.SSH_PROVIDERS['localhost.run']
        monkeypatch.setitem(T.SSH_PROVIDERS, 'localhost.run', ('127.0.0.1', port, os.environ.get('USER') or 'root', '0', pat))
        with pytest.raises(T.TunnelError, match=r'not a plain') as x: T.open_tunnel(web, provider='localhost.run', identity=key)
        assert '$(id)' in str(x.value) and procs.running() == []  # named (quoted) in the error, never used as an address
    finally: p.terminate(); p.wait(10)

# --- sshd reached only through a tunnel listens on loopback only (the real sshd) ---
def _listening(port) -> set:
    "The addresses a TCP socket listens on at `port`, from the kernel's tables"
    out = set()
    for f, n in (('/proc/net/tcp', 8), ('/proc/net/tcp6', 32)):
        for l in Path(f).read_text().splitlines()[1:]:
            local, st = l.split()[1], l.split()[3]
            a, p = local.split(':')
            if st == '0A' and int(p, 16) == port: out.add(a)
    return out

@needs_sshd
def test_sshd_behind_a_tunnel_listens_on_loopback_only(env, monkeypatch, tmp_path):
    from test_ssh import keygen
    from persistlab.ssh import start_server, stop_server
    from persistlab.platforms import detect
    bindir = tmp_path/'bin'; bindir.mkdir(); (bindir/'cloudflared').symlink_to(STANDINS/'cloudflared')
    reg = tmp_path/'cf'; reg.mkdir()
    monkeypatch.setenv('PATH', f"{bindir}:{os.environ['PATH']}"); monkeypatch.setenv('FAKE_CF_REGISTRY', str(reg))
    monkeypatch.setenv('FAKE_CF_MODE', 'ok'); monkeypatch.delenv('PERSISTLAB_CLOUDFLARED', raising=False)
    storage = tmp_path/'storage'; storage.mkdir()
    plat = detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(storage)))
    key = keygen(tmp_path/'laptop')
    s = start_server(procs.free_port(), keys=(tmp_path/'laptop.pub').read_text(), install=False, home=env/'home',
                     storage=storage, platform=plat, strict_modes=False, tunnel=T.sshd_opener('cloudflared'), identity_file=str(key))
    try:
        assert _listening(s.port) == {'0100007F'}  # 127.0.0.1, not 0.0.0.0 or ::
        cfg = tmp_path/'laptop_ssh_config'; cfg.write_text(s.config_block)
        r = subprocess.run(['ssh', '-F', str(cfg), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
                            s.alias, 'echo through-the-tunnel'], capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == 'through-the-tunnel', r.stderr  # the tunnel still reaches it
    finally: stop_server(home=env/'home')

# --- a code-server password persistlab accepts must log in (the real code-server) ---
@pytest.mark.parametrize('pw', ['  leading-space-pw', 'trailing-space-pw ', 'new\nline-pw', 'carriage\rreturn-pw', 'pasted-from-a-file-pw\n'])
def test_code_server_password_that_cannot_log_in_is_refused(tmp_path, monkeypatch, pw):
    from test_codeserver import CS  # the same real code-server the other tests use
    if not CS.exists(): pytest.skip(f'needs a real code-server at {CS}')
    import requests
    from persistlab import codeserver as C
    from persistlab.platforms import detect
    for d in ('home', 'storage', 'proj'): (tmp_path/d).mkdir()
    monkeypatch.setenv('HOME', str(tmp_path/'home')); monkeypatch.setenv('PERSISTLAB_RUNTIME', str(tmp_path/'run'))
    monkeypatch.setenv('PERSISTLAB_CODE_SERVER', str(CS)); monkeypatch.setenv('CODE_SERVER_PASSWORD', pw)
    plat = detect(env=dict(HOME=str(tmp_path/'home'), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(tmp_path/'storage')))
    try:
        try: C.start_code_server(tmp_path/'proj', provider='none', platform=plat)
        except C.CodeServerError as e:
            assert '\n' not in str(e) and pw.strip() not in str(e) and 'CODE_SERVER_PASSWORD' in str(e)
            assert procs.get('code-server') is None; return
        # reported running: then the user logs in with that very password, as a browser sends it
        base = f"http://127.0.0.1:{procs.get('code-server').info['port']}"
        typed = re.sub('[\r\n]', '', pw)  # a browser's password field strips line breaks from what is typed or pasted
        s = requests.Session(); r = s.post(base + '/login', data={'password': typed}, allow_redirects=False, timeout=10)
        assert r.status_code == 302 and 'code-server-session' in s.cookies, 'persistlab reported code-server running, but its password cannot log in'
    finally: C.stop_code_server(); procs.stop_all()

# --- Kaggle: /kaggle/working is the notebook's public output ---
def _members(snap) -> set:
    "The names in a snapshot (zstd or gzip: GNU tar reads both)"
    return set(subprocess.run(['tar', '-tf', str(snap)], capture_output=True, text=True, check=True).stdout.splitlines())

def test_kaggle_public_output_gets_no_tokens_or_keys(replica):
    vm = replica('kaggle')
    key = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n'
    vm.sh('mkdir -p ~/.cache/huggingface ~/.config/wandb ~/.config/tool ~/proj ~/.local/lib/deploy ~/.kaggle\n'
          'echo hf_abcdefghijklmnop > ~/.cache/huggingface/token; echo data > ~/.cache/huggingface/model.bin\n'
          'printf "[default]\\napi_key = 0123456789abcdef\\n" > ~/.config/wandb/settings; echo ok > ~/.config/tool/conf\n'
          'echo "OPENAI_API_KEY=sk-123" > ~/proj/.env; echo "OPENAI_API_KEY=" > ~/proj/.env.example; echo "print(1)" > ~/proj/train.py\n'
          f'printf %s {key!r} > ~/proj/deploy_key; printf %s {key!r} > ~/.local/lib/deploy/id\n'
          'echo "machine api.wandb.ai login user password 0123" > ~/.netrc; echo "{\\"key\\": \\"k\\"}" > ~/.kaggle/kaggle.json')
    c1, c2, c3 = vm.run(['%load_ext persistlab\n%persist .cache .config proj .local', '%persist .netrc', '%persist .kaggle'])
    assert c1.ok, c1
    snaps = vm.working/'persistlab/snapshots'
    got = set().union(*(_members(f) for f in snaps.glob('*.tar.*')))
    for secret in ('.cache/huggingface/token', '.config/wandb/settings', 'proj/.env', 'proj/deploy_key', '.local/lib/deploy/id'):
        assert secret not in got, secret  # not in the public output
        assert secret in c1.out  # and the user is told which were left out
    assert {'.cache/huggingface/model.bin', '.config/tool/conf', 'proj/train.py', 'proj/.env.example'} <= got  # the rest is kept
    assert not c2.ok and 'Kaggle Secrets' in c2.error and not c3.ok and 'Kaggle Secrets' in c3.error
    assert not any('netrc' in f.name or 'kaggle' in f.name for f in snaps.glob('*'))
    assert vm.p('/root/proj/.env').read_text() == 'OPENAI_API_KEY=sk-123\n'  # home keeps them

# --- benches are machines of their own: nothing in this host's /run/persistlab ---
@pytest.mark.skipif(not IS_ROOT or not shutil.which('unshare'), reason='needs root for a private /run (mount namespace)')
def test_a_bench_leaves_no_marker_in_the_hosts_run(tmp_path):
    home = tmp_path/'home'; (home/'.x').mkdir(parents=True); (home/'.x/f').write_text('x')
    code = (f'import sys, os; sys.path.insert(0, {str(ROOT/"bench")!r}); import common\n'  # what every bench imports first
            'from persistlab.platforms import detect; from persistlab.archive import archive_persist\n'
            f'pl = detect(env=dict(HOME={str(home)!r}, PERSISTLAB_PLATFORM="colab", PERSISTLAB_STORAGE={str(tmp_path/"st")!r}))\n'
            f'archive_persist(".x", home={str(home)!r}, platform=pl)')
    env = {k: v for k, v in os.environ.items() if k != 'PERSISTLAB_RUN'}  # as a developer runs `python bench/archive.py`
    (tmp_path/'st').mkdir(); (tmp_path/'bench_like.py').write_text(code)
    r = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c',  # this host's /run, as a fresh tmpfs
                        f'mount -t tmpfs tmpfs /run && {sys.executable} {tmp_path}/bench_like.py && echo SAVED && ls -A /run/persistlab 2>/dev/null; echo END'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout == 'SAVED\nEND\n', r.stdout + r.stderr  # saved, and no marker left behind
