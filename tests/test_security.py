"Other users and processes: a second local account, reused pids, planted modules, hostile provider output, public storage"
import os, sys, re, json, time, pwd, shutil, signal, socket, subprocess, tempfile, threading
from pathlib import Path
import pytest
from persistlab import procs, tunnel as T
from conftest import IS_ROOT, ROOT

def wait_for(f, timeout=20, every=0.1):
    "Poll `f` until it gives something truthy (bounded); returns that or None"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (v := f()): return v
        time.sleep(every)
    return None

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
    home, storage = Path(alice.pw_dir), Path(alice.pw_dir)/'keep'
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
    assert (Path(vm)/marker.name).read_text() == '.inputrc\n'  # alice's own marker, in her own folder
