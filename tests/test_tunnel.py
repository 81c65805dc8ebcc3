"Tunnels: the SSH provider against a real OpenSSH stand-in, cloudflared and ngrok against stand-ins that print the real lines"
import os, sys, re, json, time, shutil, socket, hashlib, getpass, threading, subprocess, textwrap
from http.server import HTTPServer, ThreadingHTTPServer, BaseHTTPRequestHandler, SimpleHTTPRequestHandler
from pathlib import Path
import pytest
from persistlab import procs, tunnel as T
from persistlab.platforms import detect
from persistlab.fetch import FetchError
from conftest import start_sshd, WAIT_FOR_CLIENT, wait_for

STANDINS = Path(__file__).parent/'standins'
SSHD = shutil.which('sshd') or '/usr/sbin/sshd'
needs_sshd = pytest.mark.skipif(not Path(SSHD).exists(), reason='needs OpenSSH sshd (apt-get install openssh-server; .ci/run installs it)')
LHR = "echo \"===============================================================================\"; echo \"Welcome to localhost.run!\"; echo \"https://twitter.com/localhost_run\"; echo; " \
      "h=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \\n'); echo \"$h.lhr.life tunneled with tls termination, https://$h.lhr.life\"; " \
      "while kill -0 $PPID 2>/dev/null; do sleep 1; done"

@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv('PERSISTLAB_RUNTIME', str(tmp_path/'run'))
    monkeypatch.setenv('HOME', str(tmp_path/'home')); (tmp_path/'home').mkdir()
    monkeypatch.setenv('JUPYTER_RUNTIME_DIR', str(tmp_path/'jrt'))
    for k in ('NGROK_AUTHTOKEN', 'PERSISTLAB_NGROK'): monkeypatch.delenv(k, raising=False)
    # nothing may leave this machine: the default providers point at stand-ins or closed loopback ports
    monkeypatch.setenv('PERSISTLAB_CLOUDFLARED', str(STANDINS/'cloudflared')); monkeypatch.setenv('FAKE_CF_MODE', 'fail')
    monkeypatch.setenv('PERSISTLAB_GITHUB_API', f'http://127.0.0.1:{procs.free_port()}')  # GitHub's API: not reachable here
    for k, v in list(T.SSH_PROVIDERS.items()): monkeypatch.setitem(T.SSH_PROVIDERS, k, ('127.0.0.1', procs.free_port(), *v[2:]))
    yield tmp_path
    T.close_tunnel('all'); procs.stop_all()

@pytest.fixture
def web(env):
    "A local HTTP server to expose"
    d = env/'www'; d.mkdir(); (d/'index.html').write_text('hello through the tunnel')
    class Q(SimpleHTTPRequestHandler):
        def __init__(s, *a, **k): super().__init__(*a, directory=str(d), **k)
        def log_message(s, *a): pass
    srv = ThreadingHTTPServer(('127.0.0.1', 0), Q); threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_port
    srv.shutdown()

@pytest.fixture
def standin(env):
    "A real OpenSSH sshd that answers like localhost.run: prints its URL line on the session, forwards -R"
    p, port, _, key = start_sshd(env/'lhr', LHR)
    yield dict(port=port, key=key, proc=p, dir=env/'lhr')
    p.terminate(); p.wait(10)

def lhr(standin, port, **kw):
    return T.SSHTunnel(port, '127.0.0.1', standin['port'], getpass.getuser(), '0', T.SSH_PROVIDERS['localhost.run'][4],
                       standin['key'], name='localhost.run', **kw)

def allocated(port):
    log = (procs.runtime_dir()/f'tunnel-{port}.log').read_text()
    return int(re.findall(r'Allocated port (\d+) for remote forward', log)[-1])

def get(url, timeout=5):
    import requests
    return requests.get(url, timeout=timeout)

def session_children(sshd_pid):
    out = []
    for p in Path('/proc').iterdir():
        if p.name.isdigit():
            try:
                if int((p/'stat').read_text().rsplit(')', 1)[1].split()[1]) == sshd_pid: out.append(int(p.name))
            except (OSError, ValueError, IndexError): pass
    return out

@needs_sshd
def test_ssh_provider_url_forward_reconnect_and_stop(env, web, standin):
    t = lhr(standin, web)
    url = t.start(timeout=20)
    assert re.fullmatch(r'https://[0-9a-f]{12}\.lhr\.life', url)  # the tunneled-with line, not the banner's https
    assert get(f'http://127.0.0.1:{allocated(web)}/').text == 'hello through the tunnel'  # through the real -R forward
    sup = procs.get(procs.SUPERVISOR); assert sup and sup.alive()  # a process of its own, not a kernel thread
    seen = []
    threading.Thread(target=T._watch, args=(t.pname, url, seen.append, None, 0.2), daemon=True).start()
    for c in session_children(standin['proc'].pid): os.kill(c, 9)  # the provider drops the connection
    new = wait_for(lambda: (pr := procs.get(t.pname)) and pr.info.get('url') != url and pr.info.get('url'))
    assert new and re.fullmatch(r'https://[0-9a-f]{12}\.lhr\.life', new)
    assert wait_for(lambda: seen) == [new]  # the form hears of it while this kernel lives
    assert get(f'http://127.0.0.1:{allocated(web)}/').text == 'hello through the tunnel'
    st = T.tunnels(); assert new in repr(st) and 'reconnects 1' in repr(st)
    pid = procs.get(f'tunnel-{web}').pid
    T.close_tunnel(web)
    assert procs.running() == [] and wait_for(lambda: not Path(f'/proc/{pid}').exists(), 5)  # reaped by its parent, the supervisor
    assert wait_for(lambda: not sup.alive(), 5)  # nothing left to keep: the supervisor is gone too

@needs_sshd
def test_generic_ssh_server_gives_host_and_allocated_port(env, web, standin):
    (standin['dir']/'cmd.sh').write_text(WAIT_FOR_CLIENT + '\n')  # prints no URL
    info = T.open_tunnel(web, f"ssh://{getpass.getuser()}@127.0.0.1:{standin['port']}", identity=standin['key'], supervise=False,
                         platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))
    h, p = info.url.split(':')
    assert h == '127.0.0.1' and get(f'http://127.0.0.1:{p}/').text == 'hello through the tunnel'

def test_cloudflared_url_from_metrics_and_log_fallback(env, web, monkeypatch):
    monkeypatch.setenv('FAKE_CF_MODE', 'ok')
    url = T.CloudflaredTunnel(web).start(timeout=15)
    assert re.fullmatch(r'https://[a-z]+(-[a-z]+){3}\.trycloudflare\.com', url)
    T.CloudflaredTunnel(web).stop()
    monkeypatch.setenv('FAKE_CF_MODE', 'nourl')  # /quicktunnel answers nothing: the log line is used
    assert T.CloudflaredTunnel(web).start(timeout=15).endswith('.trycloudflare.com')

def test_provider_that_hangs_is_bounded_and_stopped(env, web, monkeypatch):
    monkeypatch.setenv('PERSISTLAB_CLOUDFLARED', str(STANDINS/'cloudflared')); monkeypatch.setenv('FAKE_CF_MODE', 'hang')
    t0 = time.monotonic()
    with pytest.raises(procs.ProcError, match='not ready after 3s'): T.CloudflaredTunnel(web).start(timeout=3)
    assert time.monotonic() - t0 < 10 and procs.running() == []

@needs_sshd
def test_fallback_first_fails_second_answers(env, web, standin, monkeypatch):
    monkeypatch.setenv('PERSISTLAB_CLOUDFLARED', str(STANDINS/'cloudflared')); monkeypatch.setenv('FAKE_CF_MODE', 'fail')
    monkeypatch.setenv('PERSISTLAB_GITHUB_API', f'http://127.0.0.1:{procs.free_port()}')  # GitHub's API: not reachable here
    monkeypatch.setitem(T.SSH_PROVIDERS, 'localhost.run', ('127.0.0.1', standin['port'], getpass.getuser(), '0', T.SSH_PROVIDERS['localhost.run'][4]))
    info = T.open_tunnel(web, identity=standin['key'], timeout=10, platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))
    assert info.provider == 'localhost.run' and info.url.endswith('.lhr.life')
    rows = {r[0]: r for r in info}
    assert rows['cloudflared'][1] == 'failed' and 'exited with code 1' in rows['cloudflared'][2]
    assert 'anyone with this URL' in repr(info)

class _Files(BaseHTTPRequestHandler):
    files, hits = {}, []
    def do_GET(self):
        self.hits.append(self.path)
        b = self.files.get(self.path)
        if b is None: self.send_response(404); self.end_headers(); return
        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass

def test_download_checksum_and_cache(env, monkeypatch):
    body = (STANDINS/'cloudflared').read_bytes(); _Files.files = {'/cloudflared-linux-amd64': body}; _Files.hits = []
    srv = HTTPServer(('127.0.0.1', 0), _Files); threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{srv.server_port}/cloudflared-linux-amd64'
    monkeypatch.setenv('PATH', '/usr/bin:/bin'); monkeypatch.delenv('PERSISTLAB_CLOUDFLARED')  # no cloudflared anywhere yet
    cache = env/'storage-cache'
    with pytest.raises(FetchError, match='does not match'): T.cloudflared_bin(cache, url, sha256='0' * 64)
    assert not (cache/'bin/cloudflared').exists() and not list((cache/'bin').iterdir())
    b = T.cloudflared_bin(cache, url, sha256=hashlib.sha256(body).hexdigest())
    assert b.read_bytes() == body and os.access(b, os.X_OK) and len(_Files.hits) == 2
    assert T.cloudflared_bin(cache, url) == b and len(_Files.hits) == 2  # cached: no second download
    srv.shutdown()

SECRET = 'ngrok-TEST-SECRET-4f9a1c'

def scan_for(secret, *paths):
    "Every place the secret shows up: files under `paths`, and every process's argv"
    hits = [str(f) for p in paths for f in Path(p).rglob('*') if f.is_file() and f.name != 'ngrok.yml' and secret.encode() in f.read_bytes()]
    for c in Path('/proc').glob('[0-9]*/cmdline'):
        try:
            if secret.encode() in c.read_bytes(): hits.append(str(c))
        except OSError: pass
    return hits

def test_ngrok_token_stays_secret(env, web, monkeypatch):
    monkeypatch.setenv('PERSISTLAB_NGROK', str(STANDINS/'ngrok')); monkeypatch.setenv('NGROK_AUTHTOKEN', SECRET)
    info = T.open_tunnel(web, 'ngrok', supervise=False, platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))
    assert re.fullmatch(r'https://[0-9a-f]{12}\.ngrok-free\.app', info.url)
    cfg = procs.runtime_dir()/'ngrok.yml'
    assert oct(cfg.stat().st_mode & 0o777) == '0o600'
    assert scan_for(SECRET, env) == [] and SECRET not in repr(info) + info._repr_markdown_() + repr(T.tunnels())
    T.close_tunnel(web)

def test_ngrok_tcp_without_card_says_so(env, web, monkeypatch):
    monkeypatch.setenv('PERSISTLAB_NGROK', str(STANDINS/'ngrok')); monkeypatch.setenv('NGROK_AUTHTOKEN', 'nocard')
    with pytest.raises(T.TunnelError, match='card on file'):
        T.open_tunnel(web, tcp=True, supervise=False, platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))
    assert not procs.records()  # the agent that opened no tunnel was stopped

def test_ngrok_without_token_is_clear(env, web):
    with pytest.raises(T.TunnelError, match='ngrok needs NGROK_AUTHTOKEN'):
        T.open_tunnel(web, 'ngrok', supervise=False, platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))

def test_bad_input_warnings_and_refusals(env, web):
    pl = detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local'))
    for bad, msg in ((0, 'out of range'), (70000, 'out of range'), ('abc', 'not a number')):
        with pytest.raises(ValueError, match=msg): T.open_tunnel(bad, platform=pl)
    with pytest.raises(T.TunnelError, match="unknown provider 'bore'; valid: jupyterhub, colab, cloudflared"): T.open_tunnel(web, 'bore', platform=pl)
    with pytest.raises(T.TunnelError, match='Kaggle stops sessions.*--accept-risk'):
        T.open_tunnel(web, platform=detect(env=dict(HOME='/r', PERSISTLAB_PLATFORM='kaggle')))
    jrt = env/'jrt'; jrt.mkdir()
    (jrt/'jpserver-1.json').write_text(json.dumps(dict(port=web, base_url='/', token='', pid=os.getpid())))
    with pytest.raises(T.TunnelError, match='Jupyter server without a token'): T.open_tunnel(web, platform=pl)

def test_nothing_listening_is_a_warning_first(env, monkeypatch):
    monkeypatch.setenv('FAKE_CF_MODE', 'ok')
    port = procs.free_port()
    info = T.open_tunnel(port, 'cloudflared', supervise=False, platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))
    assert info[0][:2] == ('warning', 'nothing listens')

def test_jupyterhub_proxy_url(env, monkeypatch):
    pytest.importorskip('jupyter_server_proxy', reason='jupyter-server-proxy is installed by .ci/run for this test')
    t = T.ProxyTunnel(8050, 'jupyterhub', env={'JUPYTERHUB_SERVICE_PREFIX': '/user/ada/'})
    assert t.start() == '/user/ada/proxy/8050/'

def test_magic_in_real_ipython(env, web):
    code = textwrap.dedent(f'''
        %load_ext persistlab
        %tunnel abc
        %tunnel 70000
        %tunnel {web} -p bore
        %tunnel {web} -p cloudflared
        %tunnel {procs.free_port()} -p ngrok --domain ada-lab.ngrok-free.app
        %tunnel --list
        %unload_ext persistlab
        ''').strip() + '\nexit\n'
    e = {**os.environ, 'FAKE_CF_MODE': 'ok', 'PERSISTLAB_PLATFORM': 'local', 'NGROK_AUTHTOKEN': SECRET, 'PERSISTLAB_NGROK': str(STANDINS/'ngrok')}
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=code, env=e, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert "port 'abc' is not a number" in out and 'port 70000 is out of range' in out and "unknown provider 'bore'" in out
    assert re.search(r'cloudflared +open: https://\S+\.trycloudflare\.com', out) and 'Traceback' not in out
    assert re.search(r'ngrok +open: https://ada-lab\.ngrok-free\.app', out) and SECRET not in out, out  # --domain: the static address
    assert not re.search(r'Out\[\d+\]: *\n+(In \[|$)', out), out  # a tunnel's table is shown once, with no empty Out[n] after it
    assert procs.running() == []

def test_colab_port_proxy_with_fake_google_colab(env, tmp_path, monkeypatch):
    "Colab's proxy URL comes from google.colab.kernel.proxyPort (asked through eval_js); http only, and said so"
    d = tmp_path/'fakecolab'; (d/'google/colab').mkdir(parents=True)
    (d/'google/__init__.py').write_text(''); (d/'google/colab/__init__.py').write_text('')
    (d/'google/colab/output.py').write_text(
        "import re\ndef eval_js(js):\n    p = re.search(r'proxyPort\\((\\d+)\\)', js).group(1)\n    return f'https://{p}-m-s-abc123-a.us-west1-1.prod.colab.dev'\n")
    monkeypatch.syspath_prepend(str(d))
    for m in [m for m in sys.modules if m.startswith('google')]: monkeypatch.delitem(sys.modules, m)
    try: info = T.open_tunnel(8050, platform=detect(env=dict(HOME=str(env/'home'), COLAB_RELEASE_TAG='r'), colab_importable=True))
    finally:  # the fake google.colab must not outlive this test: later tests would think they run on Colab
        for m in [m for m in sys.modules if m.startswith('google')]: del sys.modules[m]
    assert info.provider == 'colab' and info.url == 'https://8050-m-s-abc123-a.us-west1-1.prod.colab.dev'
    assert 'no websockets' in repr(info) and procs.running() == []

def test_cloudflared_download_is_cached_in_storage(env, monkeypatch):
    body = (STANDINS/'cloudflared').read_bytes(); _Files.hits = []
    arch = {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(__import__('platform').machine())
    api = {'assets': [{'name': f'cloudflared-linux-{arch}', 'digest': 'sha256:' + hashlib.sha256(body).hexdigest()}]}
    _Files.files = {'/cf': body, '/repos/cloudflare/cloudflared/releases/latest': json.dumps(api).encode()}
    srv = HTTPServer(('127.0.0.1', 0), _Files); threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv('PERSISTLAB_GITHUB_API', f'http://127.0.0.1:{srv.server_port}')  # GitHub's published digest
    monkeypatch.delenv('PERSISTLAB_CLOUDFLARED'); monkeypatch.setenv('PATH', '/usr/bin:/bin')
    monkeypatch.setenv('PERSISTLAB_CLOUDFLARED_URL', f'http://127.0.0.1:{srv.server_port}/cf'); monkeypatch.setenv('FAKE_CF_MODE', 'ok')
    st = env/'storage'; st.mkdir()
    pl = detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st)))
    T.open_tunnel(procs.free_port(), 'cloudflared', supervise=False, platform=pl)
    assert (st/'cache/bin/cloudflared').read_bytes() == body and _Files.hits == ['/repos/cloudflare/cloudflared/releases/latest', '/cf']
    T.close_tunnel('all')
    T.open_tunnel(procs.free_port(), 'cloudflared', supervise=False, platform=pl)  # next session: no download
    assert len(_Files.hits) == 2
    srv.shutdown()

def test_interrupting_the_cell_does_not_kill_the_tunnel(env, web):
    "Ctrl-C in a notebook signals the kernel's process group; the tunnel runs in its own session"
    code = f"""
import os, signal, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as a kernel has it, even if this test runs as a background job (SIGINT ignored)
from persistlab import tunnel as T
from persistlab.platforms import detect
info = T.open_tunnel({web}, 'cloudflared', supervise=False, platform=detect(env=dict(HOME=os.environ['HOME'], PERSISTLAB_PLATFORM='local')))
print('URL', info.url, flush=True)
try: os.killpg(0, signal.SIGINT); time.sleep(1)
except KeyboardInterrupt: print('interrupted', flush=True)
"""
    r = subprocess.run([sys.executable, '-c', code], env={**os.environ, 'FAKE_CF_MODE': 'ok'}, capture_output=True, text=True,
                       timeout=60, start_new_session=True)
    assert 'URL https://' in r.stdout and 'interrupted' in r.stdout, r.stdout + r.stderr
    pr = procs.get(f'tunnel-{web}')
    assert pr is not None and pr.alive()  # survived the interrupt
    T.close_tunnel(web); assert procs.running() == []

def test_kernel_exit_keeps_the_tunnel(env, web):
    "Services belong to the machine: a kernel that exits leaves the tunnel up, and touches nothing else"
    other = subprocess.Popen(['sleep', '60'], start_new_session=True)  # not ours
    code = f"%load_ext persistlab\n%tunnel {web} -p cloudflared\nexit\n"
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=code, env={**os.environ, 'FAKE_CF_MODE': 'ok', 'PERSISTLAB_PLATFORM': 'local'}, capture_output=True, text=True, timeout=120)
    assert 'trycloudflare.com' in r.stdout, r.stdout + r.stderr
    time.sleep(0.3)
    assert [p.name for p in procs.running()] == [f'tunnel-{web}'] and other.poll() is None
    T.close_tunnel('all'); assert procs.running() == []
    other.kill(); other.wait()

@needs_sshd
def test_ssh_provider_against_a_plain_openssh_server_holds_its_address(env, web):
    "A VPS's sshd runs the user's shell on a session: the tunnel must open none (-N), or it drops every ~2 s on a new port"
    p, port, _, key = start_sshd(env/'vps', None)
    try:
        info = T.open_tunnel(web, f'ssh://{getpass.getuser()}@127.0.0.1:{port}', identity=key,
                             platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))
        pid, rport = procs.get(f'tunnel-{web}').pid, info.url.split(':')[1]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            assert get(f'http://127.0.0.1:{rport}/').text == 'hello through the tunnel'
            pr = procs.get(f'tunnel-{web}')
            assert pr and pr.pid == pid and pr.info['url'] == info.url, (pr and pr.tail())
            time.sleep(1)
    finally: T.close_tunnel('all'); p.terminate(); p.wait(10)

def test_failure_shows_the_reason_from_the_log(env, web):
    pl = detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local'))
    with pytest.raises(T.TunnelError, match='Could not resolve hostname nowhere.invalid'):
        T.open_tunnel(web, 'ssh://me@nowhere.invalid', platform=pl)
    info = None
    with pytest.raises(T.TunnelError) as e: T.open_tunnel(web, platform=pl, timeout=10)  # every default provider fails here
    assert 'failed to request quick Tunnel' in str(e.value) and 'Connection refused' in str(e.value), str(e.value)
    assert procs.running() == []

def test_ngrok_without_token_in_real_ipython_is_one_line(env, web):
    code = f"%load_ext persistlab\n%tunnel {web} -p ngrok\nexit\n"
    e = {**os.environ, 'PERSISTLAB_PLATFORM': 'local', 'PERSISTLAB_STORAGE': str(env/'storage')}
    r = subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=code, env=e, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert f"ngrok needs NGROK_AUTHTOKEN: set it in the environment, in Colab or Kaggle secrets, or in {env/'storage'}/persistlab-secrets.json" in out, out
    assert 'Traceback' not in out and 'authtoken:' not in out and 'download' not in out.lower()

def test_ngrok_static_domain_survives_a_reconnect(env, web, monkeypatch):
    monkeypatch.setenv('PERSISTLAB_NGROK', str(STANDINS/'ngrok')); monkeypatch.setenv('NGROK_AUTHTOKEN', SECRET)
    monkeypatch.setenv('NGROK_DOMAIN', 'ada-lab.ngrok-free.app')
    info = T.open_tunnel(web, 'ngrok', platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))
    assert info.url == 'https://ada-lab.ngrok-free.app'
    pr = procs.get(f'tunnel-{web}'); os.killpg(pr.pgid, 9)  # the agent dies
    back = wait_for(lambda: (q := procs.get(f'tunnel-{web}')) and q.pid != pr.pid and q.info.get('reconnects') == 1 and q)
    assert back and back.info['url'] == 'https://ada-lab.ngrok-free.app' and back.info['reconnects'] == 1
    assert scan_for(SECRET, env) == []
    T.close_tunnel('all'); assert not back.alive()

def test_cloudflared_named_tunnel_keeps_its_hostname_and_the_token_out_of_argv(env, web, monkeypatch):
    tok = 'eyJhIjoiYWNjb3VudCIsInQiOiJ0dW5uZWwiLCJzIjoiU0VDUkVULTkxNzMifQ'
    monkeypatch.setenv('FAKE_CF_MODE', 'ok'); monkeypatch.setenv('TUNNEL_TOKEN', tok)
    info = T.open_tunnel(web, 'cloudflared', platform=detect(env=dict(HOME=str(env/'home'), PERSISTLAB_PLATFORM='local')))
    assert info.url == 'https://lab.example.org'
    pr = procs.get(f'tunnel-{web}'); assert 'run' in pr.argv
    assert [f for f in scan_for(tok, env, procs.runtime_dir()) if not f.endswith(f'cloudflared-{web}.token')] == []
    assert oct((procs.runtime_dir()/f'cloudflared-{web}.token').stat().st_mode & 0o777) == '0o600'
    monkeypatch.delenv('TUNNEL_TOKEN')  # the supervisor needs nothing from this kernel's environment
    os.kill(pr.pid, 9)
    back = wait_for(lambda: (q := procs.get(f'tunnel-{web}')) and q.pid != pr.pid and q)
    assert back and back.info['url'] == 'https://lab.example.org'
    T.close_tunnel('all')
