"""A real JupyterHub (configurable-http-proxy, dummy login, SimpleLocalProcessSpawner) with public_url set and unset:
the URLs %tunnel and %codeserver print answer through the hub, and code-server's socket refuses other local users"""
import os, sys, json, time, signal, shutil, subprocess, threading
from http.server import HTTPServer, SimpleHTTPRequestHandler
from functools import partial
from pathlib import Path
from urllib.parse import urljoin
import pytest, requests
from persistlab import procs

CHP = Path(os.environ.get('PERSISTLAB_TEST_CHP', '/opt/persistlab-test/chp/node_modules/.bin/configurable-http-proxy'))
CS = Path(os.environ.get('PERSISTLAB_TEST_CODE_SERVER', '/opt/persistlab-test/code-server/node_modules/.bin/code-server'))
pytestmark = [pytest.mark.skipif(not CHP.exists(), reason=f'needs configurable-http-proxy at {CHP}: tools/install-chp.sh (run by .ci/run)'),
              pytest.mark.skipif(not CS.exists(), reason=f'needs a real code-server at {CS}: tools/install-code-server.sh (run by .ci/run)')]
TOKEN = 'persistlab-hub-test-service-token-5c1e'  # a test service's token, for the hub's REST API and the user's server
USER = 'ada'

class Hub:
    def __init__(self, d, public, env=None, users=(USER,), servers=None):
        self.d, self.public, self.port, self.env, self.users = Path(d), public, procs.free_port(), dict(env or {}), tuple(users)
        self.servers = tuple(users if servers is None else servers)  # the users whose server starts (the others only log in)
        self.url = f'http://127.0.0.1:{self.port}'
        self.h = {'Authorization': f'token {TOKEN}'}
    def start(self):
        (self.d/'home').mkdir(parents=True)
        cfg = f'''
c.JupyterHub.ip = '127.0.0.1'; c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = '127.0.0.1'; c.JupyterHub.hub_port = {procs.free_port()}
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{procs.free_port()}'
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.JupyterHub.db_url = 'sqlite:///{self.d}/hub.sqlite'
c.JupyterHub.cookie_secret_file = '{self.d}/cookie_secret'
c.JupyterHub.pid_file = '{self.d}/hub.pid'
c.JupyterHub.authenticator_class = 'dummy'
c.JupyterHub.spawner_class = 'simple'
c.SimpleLocalProcessSpawner.home_dir_template = '{self.d}/home/{{username}}'
c.Spawner.cmd = [{sys.executable!r}, '-m', 'jupyterhub.singleuser']
c.Spawner.args = ['--allow-root'] if {os.geteuid() == 0} else []
c.Spawner.environment = {{'PYTHONPATH': {os.environ.get('PYTHONPATH', '')!r}, 'PERSISTLAB_CODE_SERVER': {str(CS)!r}, **{self.env!r}}}
c.Spawner.start_timeout = 60; c.Spawner.http_timeout = 60
c.JupyterHub.services = [{{'name': 'persistlab-test', 'api_token': {TOKEN!r}}}]
c.JupyterHub.load_roles = [{{'name': 'persistlab-test', 'services': ['persistlab-test'],
                            'scopes': ['admin:users', 'admin:servers', 'access:servers', 'tokens']}}]
c.JupyterHub.allow_named_servers = False
c.Authenticator.allow_all = True
''' + (f"c.JupyterHub.public_url = '{self.url}/'\n" if self.public else '')
        (self.d/'jupyterhub_config.py').write_text(cfg)
        env = {**os.environ, 'HOME': str(self.d), 'TMPDIR': str(self.d)}
        self.log = open(self.d/'hub.log', 'w')
        self.p = subprocess.Popen([sys.executable, '-m', 'jupyterhub', '-f', str(self.d/'jupyterhub_config.py')], cwd=self.d, env=env,
                                  stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait(lambda: self.api('get', 'users').status_code == 200, 60, 'the hub did not start')
        for u in self.users: self.api('post', f'users/{u}')
        for u in self.servers:
            r = self.api('post', f'users/{u}/server', timeout=90)
            assert r.status_code in (201, 202), r.text
        for u in self.servers:
            self.wait(lambda: (self.api('get', f'users/{u}').json().get('servers', {}).get('', {}).get('ready')), 60, 'the server did not start')
        return self
    def api(self, verb, path, timeout=10, **kw):
        try: return getattr(requests, verb)(f'{self.url}/hub/api/{path}', headers=self.h, timeout=timeout, **kw)
        except requests.RequestException as e:
            r = requests.Response(); r.status_code = 599; r._content = str(e).encode(); return r
    def wait(self, ok, timeout, what):
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if self.p.poll() is not None: break
            try:
                if ok(): return
            except (requests.RequestException, ValueError): pass
            time.sleep(0.2)
        raise AssertionError(f"{what}:\n{(self.d/'hub.log').read_text()[-3000:]}")
    def server_env(self, user=USER) -> dict:
        "The single-user server's environment: what its kernels inherit"
        pid = self.api('get', f'users/{user}').json()['servers']['']['state']['pid']
        raw = Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
        return dict(x.decode().split('=', 1) for x in raw if b'=' in x)
    def stop(self):
        if not hasattr(self, 'p'): return
        for u in self.servers: self.api('delete', f'users/{u}/server', timeout=30)
        os.killpg(self.p.pid, signal.SIGTERM)
        try: self.p.wait(20)
        except subprocess.TimeoutExpired: os.killpg(self.p.pid, signal.SIGKILL); self.p.wait()
        self.log.close()

@pytest.fixture(scope='module', params=['public_url set', 'public_url unset'])
def hub(request, tmp_path_factory):
    h = Hub(tmp_path_factory.mktemp('hub'), request.param == 'public_url set')
    try: yield h.start()
    finally: h.stop()

def in_kernel(hub, code):
    "Run `code` with the environment a kernel of the user's server has (JUPYTERHUB_* variables, HOME, runtime dir)"
    env = {**hub.server_env(), 'PYTHONPATH': os.environ.get('PYTHONPATH', '')}
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]

def test_tunnel_url_answers_through_the_hub(hub, tmp_path):
    "%tunnel PORT on a hub gives the hub's proxy URL, prefix once, and it serves the port behind the hub's login"
    (tmp_path/'hello.txt').write_text('hello through the hub\n')
    srv = HTTPServer(('127.0.0.1', 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = in_kernel(hub, f"from persistlab.tunnel import open_tunnel; print(open_tunnel({srv.server_port}, supervise=False).url)")
        prefix = f'/user/{USER}/proxy/{srv.server_port}/'
        assert url == (f'{hub.url}{prefix}' if hub.public else prefix) and f'/user/{USER}/user/' not in url
        r = requests.get(urljoin(hub.url, url) + 'hello.txt', headers=hub.h, timeout=20)
        assert r.status_code == 200 and r.text == 'hello through the hub\n'
        assert requests.get(urljoin(hub.url, url) + 'hello.txt', allow_redirects=False, timeout=20).status_code in (302, 403)
    finally: srv.shutdown()

def test_codeserver_on_the_hub_private_socket(hub):
    "%codeserver on a hub: the URL answers through the hub; the socket behind it refuses another local user"
    url = in_kernel(hub, "from persistlab.codeserver import start_code_server; print(start_code_server().url)")
    assert url.startswith(f'{hub.url}/user/{USER}/code-server/' if hub.public else f'/user/{USER}/code-server/')
    base = urljoin(hub.url, url).split('?')[0]
    r = requests.get(base + 'healthz', headers=hub.h, timeout=120)
    assert r.status_code == 200 and 'status' in r.json()
    from test_codeserver import socket_of_code_server, connect_as_nobody
    sock = socket_of_code_server()
    assert sock and sock.is_socket()
    if os.geteuid() == 0:
        r = connect_as_nobody(sock)
        assert r.returncode != 0 and 'PermissionError' in r.stderr and 'HTTP' not in r.stdout, (r.stdout, r.stderr)
