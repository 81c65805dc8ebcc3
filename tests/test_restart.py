"Services outlive the kernel: sshd, code-server and a tunnel across a kernel restart, kept up by the supervisor process"
import os, re, sys, json, time, signal, getpass, subprocess, textwrap
from pathlib import Path
import pytest, requests
from conftest import ROOT, start_sshd, wait_for
from persistlab import procs

CS = Path(os.environ.get('PERSISTLAB_TEST_CODE_SERVER', '/opt/persistlab-test/code-server/node_modules/.bin/code-server'))
SSHD = '/usr/sbin/sshd'
STANDINS = Path(__file__).parent/'standins'
pytestmark = pytest.mark.skipif(not Path(SSHD).exists() or not CS.exists(),
                                reason=f'needs OpenSSH sshd and a real code-server at {CS} (.ci/run installs both)')

def ipython(code, env, timeout=180):
    "A real IPython process (a kernel) that runs `code` and exits"
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=textwrap.dedent(code).strip() + '\nexit\n', env=env, capture_output=True, text=True, timeout=timeout)
    return r.stdout + r.stderr

def gone(pid): return procs._stat(pid) is None or procs._stat(pid)[0] == 'Z'

def answers(url):
    try: return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException: return False

@pytest.fixture
def world():
    "A hermetic home, storage and Jupyter runtime dir; the records live where a user's do (~/.persistlab/run)"
    # under the login user's own home, not /tmp: a path chain sshd's StrictModes accepts, so the key really logs in
    import pwd, tempfile, shutil
    tmp_path = Path(tempfile.mkdtemp(dir=pwd.getpwuid(os.geteuid()).pw_dir, prefix='.persistlab-test-')); os.chmod(tmp_path, 0o700)
    home, st, jrt = tmp_path/'home', tmp_path/'storage', tmp_path/'jrt'
    for d in (home/'.ssh', st, jrt, tmp_path/'proj'): d.mkdir(parents=True)
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(home/'.ssh/id_ed25519')], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ('PERSISTLAB_RUNTIME', 'CODE_SERVER_PASSWORD', 'JUPYTERHUB_SERVICE_PREFIX',
                                                           'NGROK_AUTHTOKEN', 'TUNNEL_TOKEN')}
    env.update(HOME=str(home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st), JUPYTER_RUNTIME_DIR=str(jrt),
               PERSISTLAB_CODE_SERVER=str(CS), PERSISTLAB_SSHD=SSHD, PYTHONPATH=str(ROOT), FAKE_CF_MODE='ok',
               PERSISTLAB_CLOUDFLARED=str(STANDINS/'cloudflared'), PERSISTLAB_GITHUB_API=f'http://127.0.0.1:{procs.free_port()}')
    rd = home/'.persistlab/run'
    yield dict(home=home, env=env, rd=rd, tmp=tmp_path, jrt=jrt)
    old = os.environ.get('PERSISTLAB_RUNTIME'); os.environ['PERSISTLAB_RUNTIME'] = str(rd)
    try: procs.stop_all()  # whatever a failed test left
    finally:
        if old is None: del os.environ['PERSISTLAB_RUNTIME']
        else: os.environ['PERSISTLAB_RUNTIME'] = old
        shutil.rmtree(tmp_path, ignore_errors=True)

def rec(w, name): return procs.Proc.load(name, w['rd'])

def test_sshd_code_server_and_tunnel_outlive_the_kernel(world):
    w, user = world, getpass.getuser()
    pub = w['home']/'.ssh/id_ed25519.pub'
    vps, vport, _, _ = start_sshd(w['tmp']/'vps', None, authorized=pub.read_text())  # a plain OpenSSH server: the tunnel's far end
    sp, cp = procs.free_port(), procs.free_port()
    try:
        out = ipython(f'''
            %load_ext persistlab
            %sshsetup --server --listen 127.0.0.1 --port {sp} --authorized-keys {pub}
            %codeserver -p none --port {cp} --folder {w['tmp']/'proj'}
            %tunnel {cp} -p ssh://{user}@127.0.0.1:{vport}
            ''', w['env'])
        assert re.search(r'sshd +running', out) and re.search(r'code-server +running', out) and 'open: 127.0.0.1:' in out, out
        # the kernel is gone; all three still answer
        ssh = ['ssh', '-F', '/dev/null', '-i', str(w['home']/'.ssh/id_ed25519'), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
               '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-p', str(sp), f'{user}@127.0.0.1', 'echo in-through-sshd']
        r = subprocess.run(ssh, capture_output=True, text=True, timeout=30)
        assert 'in-through-sshd' in r.stdout, r.stderr  # a real login to the sshd the dead kernel started
        assert answers(f'http://127.0.0.1:{cp}/healthz')
        t = rec(w, f'tunnel-{cp}'); url = t.info['url']
        assert answers(f"http://127.0.0.1:{url.split(':')[1]}/healthz")  # code-server through the real ssh -R forward
        # the tunnel drops with no kernel alive: the supervisor brings it back and records where
        os.kill(t.pid, signal.SIGKILL)
        back = wait_for(lambda: (r := rec(w, f'tunnel-{cp}')) and r.pid != t.pid and r.info.get('reconnects') == 1 and r)
        assert back and back.alive(), (w['rd']/'supervisor.log').read_text()
        assert back.info['url'] == url  # it asked the server for the port it had: the address the laptop knows still works
        assert answers(f"http://127.0.0.1:{back.info['url'].split(':')[1]}/healthz")
        # a new kernel finds them, lists them, and `%unload_ext` stops them all
        pids = [rec(w, n).pid for n in ('sshd', 'code-server', f'tunnel-{cp}', procs.SUPERVISOR)]
        out = ipython('''
            %load_ext persistlab
            %sshsetup --status
            %tunnel --list
            %codeserver --status
            from persistlab.forms import Setup
            f = Setup(); print('FORM', f.url.value, '|', f.snippet.value, '|', f.cs_url.value)
            %unload_ext persistlab
            ''', w['env'])
        assert 'persistlab: still running: ' in out and re.search(rf'sshd +running: pid {pids[0]}, port {sp}', out), out
        assert re.search(rf"{cp} +ssh://{user}@127.0.0.1:{vport}: {re.escape(back.info['url'])} \(up, pid {pids[2]}, reconnects 1\)", out), out
        assert re.search(rf'code-server +running: pid {pids[1]}, port {cp}', out) and 'Traceback' not in out, out
        form = next(l for l in out.splitlines() if 'FORM' in l)  # the form shows them too
        assert back.info['url'] in form and f'sshd running on port {sp}' in form and f'code-server running on port {cp}' in form, form
        assert 'persistlab: stopped ' in out
        assert wait_for(lambda: all(gone(p) for p in pids), 10), [p for p in pids if not gone(p)]
        assert not procs.port_open(sp) and not procs.port_open(cp) and not list(w['rd'].glob('*.json'))
    finally: vps.terminate(); vps.wait(10)

STANDIN_SERVER = '''
import json, os, sys, subprocess, time
jrt = sys.argv[1]
with open(f"{jrt}/jpserver-{os.getpid()}.json", "w") as f:  # what a Jupyter server (jupyterhub-singleuser too) writes
    json.dump(dict(pid=os.getpid(), port=int(sys.argv[2]), base_url="/user/ada/", token="t0k", url="http://127.0.0.1:1/"), f)
subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner", "--simple-prompt", "--colors=NoColor"],
               input=sys.stdin.read(), text=True)   # the kernel is this server's child, as under Jupyter
print("kernel exited", flush=True)
time.sleep(600)
'''

def test_services_stop_when_the_single_user_server_stops(world):
    "On a hub, 'Stop My Server' ends the single-user server; what its notebooks started must not run on unseen"
    w, pub = world, world['home']/'.ssh/id_ed25519.pub'
    sp, web = procs.free_port(), procs.free_port()
    code = f"%load_ext persistlab\n%sshsetup --server --listen 127.0.0.1 --port {sp} --authorized-keys {pub}\n%tunnel {web} -p cloudflared\nexit\n"
    srv = subprocess.Popen([sys.executable, '-c', STANDIN_SERVER, str(w['jrt']), str(procs.free_port())], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=w['env'], text=True, start_new_session=True)
    srv.stdin.write(code); srv.stdin.close()
    out = ''
    for line in srv.stdout:
        out += line
        if 'kernel exited' in line: break
    assert 'trycloudflare.com' in out and re.search(r'sshd +running', out), out
    sup = rec(w, procs.SUPERVISOR)
    assert sup.info['watch']['pid'] == srv.pid  # it found the server above the kernel
    pids = [rec(w, n).pid for n in ('sshd', f'tunnel-{web}')] + [sup.pid]
    assert procs.port_open(sp) and not any(gone(p) for p in pids)
    os.kill(srv.pid, signal.SIGKILL); srv.wait()  # the hub stops the server (no atexit runs)
    assert wait_for(lambda: all(gone(p) for p in pids), 10), (w['rd']/'supervisor.log').read_text()
    assert not procs.port_open(sp) and not list(w['rd'].glob('*.json'))
    assert 'the Jupyter server (pid' in (w['rd']/'supervisor.log').read_text()
