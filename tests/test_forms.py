"The %persistlab form: headless (values, clicks, spied engine), in an executed notebook, and in a real browser"
import os, re, sys, json, time, shutil, signal, threading, subprocess, textwrap
from pathlib import Path
import pytest
from persistlab.platforms import detect
from persistlab.core import PersistError, Report
from persistlab.forms import Setup

SECRET = 'ngrok-FORM-SECRET-77c1e0'

class Spy:
    "Stands in for the engine functions: records calls, can block until released, can fail"
    def __init__(self): self.calls, self.gate, self.fail = [], threading.Event(), None; self.gate.set()
    def _rec(self, name, *a, **k):
        self.calls.append((name, a, k)); self.gate.wait(10)
        if self.fail: raise self.fail
    def status(self, **k): return Report([('.local', 'linked', '')])
    def persist(self, paths, **k): self._rec('persist', paths, **k); return Report([(p, 'linked', '') for p in paths])
    def restore(self, **k): self._rec('restore', **k)
    def save(self, **k): self._rec('save', **k)
    def setup_keys(self, **k):
        self._rec('setup_keys', **k)
        from persistlab.ssh import Keys
        return Keys([('id_ed25519', 'generated', '')], 'ssh-ed25519 AAAAC3Nza test@box', Path('/x/id_ed25519'))
    def start_server(self, **k):
        self._rec('start_server', **k)
        from persistlab.ssh import Server
        return Server([('sshd', 'running', '')], 2222, 'SHA256:abc', 'root', 'box')
    def stop_server(self, *a): self._rec('stop_server'); return Report([('sshd', 'was not running', '')])
    def save_secret(self, name, value, storage): self._rec('save_secret', name, value, storage)
    def open_tunnel(self, port, provider=None, **k):
        self._rec('open_tunnel', port, provider, **k); self.on_url = k['on_url']
        from persistlab.tunnel import TunnelInfo
        return TunnelInfo([], 'https://first.example', port, provider or 'cloudflared')
    def close_tunnel(self, *a): self._rec('close_tunnel', *a); return Report([(str(a[0]), 'no tunnel', '')] if a[0] != 'all' else [])
    def start_code_server(self, folder, **k):
        self._rec('start_code_server', folder, **k)
        from persistlab.codeserver import CodeServer
        return CodeServer([], 'http://127.0.0.1:9999/', getattr(self, 'pwfile', None))
    def stop_code_server(self, *a): self._rec('stop_code_server'); return Report([('code-server', 'stopped', ''), ('tunnel', 'stopped', 'cloudflared')])

@pytest.fixture
def form(tmp_path):
    spy = Spy()
    p = detect(env=dict(HOME=str(tmp_path), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(tmp_path/'st')))
    return Setup(p, engine=spy), spy

def test_persist_tab_calls_engine_and_disables_while_running(form):
    f, spy = form
    for p, c in f.paths.items(): c.value = p in ('.local', '.gitconfig')
    spy.gate.clear()
    f.persist_btn.click()
    time.sleep(0.2)
    assert f.persist_btn.disabled and 'working' in f.msgs['Persist'].value  # busy, and the kernel's main thread is free
    spy.gate.set(); f.wait()
    assert not f.persist_btn.disabled and spy.calls[0][:2] == ('persist', (['.local', '.gitconfig'],))
    assert 'Persist: .local linked; .gitconfig linked' in f.msgs['Persist'].value and 'linked' in f.state.value  # the engine's words

def test_stop_buttons_say_what_the_engine_did(form):
    "A Stop button says what happened, in the engine's words: not 'stopped' when nothing ran"
    f, spy = form
    f.sshd_stop.click(); f.wait(); assert 'sshd was not running' in f.msgs['SSH'].value, f.msgs['SSH'].value
    f.port.value = '8000'; f.tunnel_stop.click(); f.wait(); assert '8000 no tunnel' in f.msgs['Tunnel'].value, f.msgs['Tunnel'].value
    f.port.value = ''; f.tunnel_stop.click(); f.wait(); assert 'no tunnel was open' in f.msgs['Tunnel'].value, f.msgs['Tunnel'].value
    f.cs_stop.click(); f.wait(); assert 'code-server stopped; tunnel stopped' in f.msgs['code-server'].value, f.msgs['code-server'].value

def test_a_typed_token_replaces_an_older_one(form, monkeypatch):
    f, spy = form
    monkeypatch.setenv('NGROK_AUTHTOKEN', 'OLD-EXPIRED-TOKEN')
    f.port.value = '8000'; f.token.value = SECRET; f.tunnel_btn.click(); f.wait()
    assert os.environ['NGROK_AUTHTOKEN'] == SECRET and f.token.value == ''

def test_errors_are_readable_lines(form):
    f, spy = form
    spy.fail = PersistError('storage /storage/cfg: /storage does not exist; is it mounted?')
    f.restore_btn.click(); f.wait()
    assert 'Restore: storage /storage/cfg: /storage does not exist' in f.msgs['Persist'].value and 'Traceback' not in f.msgs['Persist'].value
    assert not f.restore_btn.disabled

def test_tunnel_token_read_once_cleared_saved_and_url_updates(form):
    f, spy = form
    assert f.token.value == '' and f.token_box.layout.display == 'none'  # never pre-filled; hidden unless ngrok
    f.provider.value = 'ngrok'; assert f.token_box.layout.display == ''
    f.port.value = '8000'; f.token.value = SECRET; f.save_token.value = True
    f.tunnel_btn.click(); f.wait()
    assert f.token.value == ''  # cleared in the handler
    assert ('save_secret', ('NGROK_AUTHTOKEN', SECRET, f.storage), {}) in spy.calls
    (name, a, k), = [c for c in spy.calls if c[0] == 'open_tunnel']
    assert a == ('8000', 'ngrok') and 'https://first.example' in f.url.value
    spy.on_url('https://second.example')  # the supervisor reconnected
    assert 'https://second.example' in f.url.value and SECRET not in f.msgs['Tunnel'].value + f.url.value
    os.environ.pop('NGROK_AUTHTOKEN', None)

def test_ssh_tab_key_upload_and_sshd(form):
    f, spy = form
    f.key_btn.click(); f.wait()
    assert f.pub.value.startswith('ssh-ed25519 ') and 'github.com/settings/keys' in f.copy.value
    f.upload.value = ({'name': 'id_ed25519', 'type': '', 'size': 7, 'content': memoryview(b'PRIVKEY'), 'last_modified': __import__('datetime').datetime.now()},)
    f.wait()
    assert [c for c in spy.calls if c[0] == 'setup_keys'][-1][2]['import_from'] == b'PRIVKEY' and f.upload.value == ()
    f.gh_user.value = 'octocat'; f.sshd_btn.click(); f.wait()
    (_, _, k), = [c for c in spy.calls if c[0] == 'start_server']
    assert k['github'] == 'octocat' and k['accept_risk'] is False and 'ssh -p 2222 root@box' in f.snippet.value

def test_code_server_password_revealed_on_request_then_cleared(form, tmp_path):
    f, spy = form
    pw = tmp_path/'code-server.password'; pw.write_text('cs-PASSWORD-3f9a\n'); pw.chmod(0o600)
    spy.pwfile = pw
    assert f.pw_btn.disabled  # nothing to reveal before code-server runs
    f.cs_btn.click(); f.wait()
    assert 'http://127.0.0.1:9999/' in f.cs_url.value and 'cs-PASSWORD' not in f.cs_url.value + f.msgs['code-server'].value
    assert f.pw.value == '' and not f.pw_btn.disabled
    f.pw_btn.value = True
    assert f.pw.value == 'cs-PASSWORD-3f9a' and f.pw.layout.display == ''
    f.pw_btn.value = False
    assert f.pw.value == '' and f.pw.layout.display == 'none'
    f.reveal_seconds = 0.2; f.pw_btn.value = True; time.sleep(0.6)  # left revealed: it goes away by itself
    assert f.pw_btn.value is False and f.pw.value == ''

def test_each_tab_has_its_own_message_line(form):
    f, spy = form
    spy.fail = PersistError('sshd: no host key')
    f.sshd_btn.click(); f.wait()
    assert 'no host key' in f.msgs['SSH'].value and f.msgs['Tunnel'].value == '' and f.msgs['Persist'].value == ''

def test_unexpected_errors_are_not_dressed_as_messages(form):
    f, spy = form
    spy.fail = ZeroDivisionError('division by zero')
    errs = []
    old, threading.excepthook = threading.excepthook, lambda a: errs.append(a.exc_type)
    try: f.restore_btn.click(); f.wait()
    finally: threading.excepthook = old
    assert 'unexpected ZeroDivisionError' in f.msgs['Persist'].value and errs == [ZeroDivisionError]  # the traceback goes on
    assert not f.restore_btn.disabled
    assert 'Traceback' in f.trace.value and 'ZeroDivisionError: division by zero' in f.trace.value  # under the form
    spy.fail = None; f.restore_btn.click(); f.wait()  # the next click starts clean
    assert f.trace.value == ''

def test_ticks_what_home_has_and_offers_providers_that_work_here(tmp_path):
    spy = Spy()
    env = dict(HOME=str(tmp_path), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(tmp_path/'st'))
    f = Setup(detect(env=env), engine=spy, env={})
    assert [p for p, c in f.paths.items() if c.value] == [] and 'jupyterhub' not in f.provider.options and 'colab' not in f.provider.options
    (tmp_path/'.ssh').mkdir()
    assert [p for p, c in Setup(detect(env=env), engine=spy).paths.items() if c.value] == ['.ssh']
    hub = Setup(detect(env={**env, 'PERSISTLAB_PLATFORM': 'jupyterhub'}), engine=spy, env={'JUPYTERHUB_SERVICE_PREFIX': '/user/a/'})
    assert hub.provider.options[:2] == ('auto', 'jupyterhub') and 'colab' not in hub.provider.options

def test_status_table_has_headings(form):
    f, spy = form
    assert '<th style="text-align:left">path</th>' in f.state.value and '<td>linked</td>' in f.state.value

def test_colab_door_from_the_form(tmp_path, monkeypatch):
    "On a Colab runtime made with SSH on, Start sshd sets up Colab's own sshd as %sshsetup --server does: no sshd of ours, no opt-in"
    import persistlab.colabdoor as cd
    monkeypatch.setattr(cd, 'door_open', lambda p: p.name == 'colab')  # the runtime's COLAB_ENABLE_SSH=1 and the image's sshd
    class DoorSpy(Spy):
        def open_door(self, **k):
            self._rec('open_door', **k)
            return cd.Door([], 'SHA256:abc', 'ssh-ed25519 AAAAC3Nz', 'colab-abc123')
    spy = DoorSpy()
    f = Setup(detect(env=dict(HOME=str(tmp_path), PERSISTLAB_PLATFORM='colab', PERSISTLAB_STORAGE=str(tmp_path))), engine=spy)
    f.gh_user.value = 'octocat'; f.sshd_btn.click(); f.wait()
    (_, _, k), = [c for c in spy.calls if c[0] == 'open_door']
    assert k['github'] == 'octocat' and not [c for c in spy.calls if c[0] == 'start_server']
    assert 'ProxyCommand colab ssh --proxy-mode -s SESSION' in f.snippet.value and 'colab-abc123 ssh-ed25519 AAAAC3Nz' in f.snippet.value
    assert "Colab&#x27;s sshd: your keys let in" in f.msgs['SSH'].value

def test_risky_platform_shows_warning_and_opt_in(tmp_path):
    spy = Spy()
    f = Setup(detect(env=dict(HOME=str(tmp_path), PERSISTLAB_PLATFORM='kaggle', PERSISTLAB_STORAGE=str(tmp_path))), engine=spy)
    html = ''.join(getattr(w, 'value', '') for w in f.widget.children if hasattr(w, 'value') and isinstance(w.value, str))
    assert 'Kaggle stops sessions that run sshd' in html and f.accept in f.widget.children
    f.accept.value = True; f.gh_user.value = 'octocat'; f.sshd_btn.click(); f.wait()
    assert [c for c in spy.calls if c[0] == 'start_server'][0][2]['accept_risk'] is True

def test_on_colab_ipywidgets8_turns_on_colabs_widget_manager_or_says_how(tmp_path, monkeypatch, capsys):
    "Colab draws ipywidgets 8 only through its custom widget manager: showing the form turns it on, else one line says how"
    import types, ipywidgets
    assert int(ipywidgets.__version__.split('.')[0]) >= 8  # this stack; ipywidgets 7 is tests/test_browser7.py's
    calls = []
    out = types.ModuleType('google.colab.output'); out.enable_custom_widget_manager = lambda: calls.append('on')
    colab = types.ModuleType('google.colab'); colab.output = out
    google = types.ModuleType('google'); google.colab = colab; google.__path__ = []
    for k, m in {'google': google, 'google.colab': colab, 'google.colab.output': out}.items(): monkeypatch.setitem(sys.modules, k, m)
    p = detect(env=dict(HOME=str(tmp_path), COLAB_RELEASE_TAG='release-colab', PERSISTLAB_STORAGE=str(tmp_path/'st')))
    assert p.name == 'colab'
    f = Setup(p, engine=Spy())
    f._ipython_display_()
    assert calls == ['on'] and 'widget manager' not in capsys.readouterr().out
    monkeypatch.delattr(out, 'enable_custom_widget_manager')  # an old google.colab, or not Colab's kernel
    f._ipython_display_()
    said = [l for l in capsys.readouterr().out.splitlines() if 'widget manager' in l]
    assert len(said) == 1 and 'output.enable_custom_widget_manager()' in said[0], said
    local = Setup(detect(env=dict(HOME=str(tmp_path), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(tmp_path/'st'))), engine=Spy())
    local._ipython_display_()
    assert calls == ['on'] and 'widget manager' not in capsys.readouterr().out  # elsewhere: nothing

# --- an executed notebook: no secret in saved outputs or widget state ---
def run_nb(cells, path, env, timeout=180):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    code = textwrap.dedent(f'''
        import nbformat, sys
        from nbclient import NotebookClient
        nb = nbformat.read({str(path)!r}, as_version=4)
        NotebookClient(nb, timeout={timeout}, kernel_name='python3', store_widget_state=True).execute()
        nbformat.write(nb, {str(path)!r})
        ''')
    nbformat.write(nb, path)
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=timeout + 60)
    assert r.returncode == 0, r.stderr[-3000:]
    return path.read_text()

def test_no_secret_in_executed_notebook(tmp_path):
    env = {**os.environ, 'HOME': str(tmp_path), 'PERSISTLAB_PLATFORM': 'local', 'PERSISTLAB_STORAGE': str(tmp_path/'st'),
           'PERSISTLAB_RUNTIME': str(tmp_path/'run'), 'PYTHONPATH': str(Path(__file__).parent)}
    (tmp_path/'st').mkdir()
    saved = run_nb(['%load_ext persistlab',
                    'from test_forms import Spy\nfrom persistlab.forms import Setup\nf = Setup(engine=Spy())\nf',
                    f"f.provider.value = 'ngrok'; f.port.value = '8000'; f.token.value = {SECRET!r}; f.save_token.value = True\n"
                    "f.tunnel_btn.click(); f.wait(); print(f.msgs['Tunnel'].value)",
                    'f.widget'], tmp_path/'form.ipynb', env)
    assert 'application/vnd.jupyter.widget-state+json' in saved and 'tunnel open' in saved
    # the notebook's source has the secret (the test typed it into a cell); outputs and widget state must not
    nb = json.loads(saved)
    outputs = json.dumps([c.get('outputs') for c in nb['cells']]) + json.dumps(nb['metadata'])
    assert SECRET not in outputs

def test_progress_bars_in_a_kernel_go_into_the_form(tmp_path):
    "In a real kernel, the bars a button's work draws (tqdm) land in the form's box, not in whichever cell ran last"
    (tmp_path/'st').mkdir()
    env = {**os.environ, 'HOME': str(tmp_path), 'PERSISTLAB_PLATFORM': 'local', 'PERSISTLAB_STORAGE': str(tmp_path/'st'),
           'PERSISTLAB_RUNTIME': str(tmp_path/'run'),
           'PYTHONPATH': os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parent.parent)])}
    saved = json.loads(run_nb(['from test_forms import Spy\nfrom persistlab.forms import Setup\n'
                               'class Slow(Spy):\n'
                               '    def persist(self, paths, **k):\n'
                               '        from tqdm.auto import tqdm\n'
                               "        for _ in tqdm(range(3), desc='kept', leave=True): pass\n"
                               "        for _ in tqdm(range(3), desc='gone', leave=False): pass\n"
                               '        return super().persist(paths, **k)\n'
                               'f = Setup(engine=Slow())\nf',
                               "f.paths['.local'].value = True; f.persist_btn.click(); f.wait()\n"
                               "print('in the box:', [b.children[0].value.split(':')[0] for b in f.out.children])"], tmp_path/'bars.ipynb', env))
    outs = saved['cells'][1]['outputs']
    text = ''.join(''.join(o.get('text', '')) for o in outs)
    assert "in the box: ['kept']" in text, outs  # the finished bar that closed itself is gone from the box
    assert not [o for o in outs if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})], outs  # not in the cell

# --- the one-cell Colab bootstrap, in fresh kernels, with a fake google.colab and Drive as a temp dir ---
FAKE_DRIVE = '''
from pathlib import Path
def mount(mountpoint, **kw):
    (Path(mountpoint)/'MyDrive').mkdir(parents=True, exist_ok=True); print('Mounted at', mountpoint)
'''

def test_colab_bootstrap_persists_then_restores_in_a_new_kernel(tmp_path):
    fake = tmp_path/'fake'; (fake/'google/colab').mkdir(parents=True)
    (fake/'google/__init__.py').write_text(''); (fake/'google/colab/__init__.py').write_text(''); (fake/'google/colab/drive.py').write_text(FAKE_DRIVE)
    drive = tmp_path/'content/drive'
    def env(home): return {**os.environ, 'HOME': str(home), 'PYTHONPATH': str(fake), 'COLAB_RELEASE_TAG': 'release-colab',
                           'PERSISTLAB_STORAGE': str(drive/'MyDrive/persistlab'), 'PERSISTLAB_RUNTIME': str(home/'.run')}
    h1 = tmp_path/'session1'; (h1/'.local/bin').mkdir(parents=True)
    (h1/'.local/bin/mytool').write_text('#!/bin/sh\necho mine\n'); os.chmod(h1/'.local/bin/mytool', 0o755)
    bootstrap = "%load_ext persistlab\n%persist --mount .local"  # the pip install line is skipped: persistlab is installed here
    out = run_nb([bootstrap, bootstrap], tmp_path/'s1.ipynb', env(h1))  # twice: re-running is harmless
    assert f'Mounted at {drive}' in out and (drive/'MyDrive/persistlab/snapshots').is_dir()
    h2 = tmp_path/'session2'; h2.mkdir()
    out = run_nb(['%load_ext persistlab'], tmp_path/'s2.ipynb', env(h2))
    assert 'restored' in out and os.access(h2/'.local/bin/mytool', os.X_OK)

# --- the packages box with the real engine: what the engine said is what the form shows ---
from test_packages import world, saved, VM  # noqa: F401 (world is a fixture)

def test_the_form_shows_a_version_conflict_and_nothing_to_keep(world, tmp_path, monkeypatch):
    "Saved plab-d 2.0, the new image has 1.0: Restore says so with both versions, the table shows both, nothing is forced"
    from persistlab import packages as P
    from persistlab.forms import _Engine
    vm1, storage, _ = saved(world, tmp_path, 'plab-d==2.0')
    vm2 = VM(tmp_path/'vm2', storage, world['image'])  # a fresh machine from the image, which has plab-d 1.0
    class Engine(_Engine):  # persistlab's engine, for vm2's Python: the kernel the form would run in
        def save_packages(self, **k): return P.save_packages(python=vm2.py, quiet=True, **k)
        def restore_packages(self, **k): return P.restore_packages(python=vm2.py, quiet=True, **k)
    site, = (vm2.base/'image/lib').glob('python*/site-packages')
    monkeypatch.syspath_prepend(str(site))  # this kernel has what vm2 has installed
    plat = lambda st: detect(env=dict(HOME=str(vm2.home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st)))
    f = Setup(plat(storage), home=vm2.home, engine=Engine())
    assert '<td>package 2.0 saved, 1.0 installed</td>' in f.state.value, f.state.value
    for c in f.paths.values(): c.value = False
    f.pkgs.value = True
    f.restore_btn.click(); f.wait()
    msg, details = f.msgs['Persist'].value, f.details['Persist'].value
    assert 'Restore: plab-d conflict (details below)' in msg and 'this image has 1.0, you saved 2.0' in details, (msg, details)
    assert vm2.imports('plab_d') == ['d1.0'] and 'package 2.0 saved, 1.0 installed' in f.state.value  # not forced
    (tmp_path/'empty').mkdir()
    g = Setup(plat(tmp_path/'empty'), home=vm2.home, engine=Engine())
    for c in g.paths.values(): c.value = False
    g.pkgs.value = True
    g.persist_btn.click(); g.wait()
    assert 'Persist: packages nothing to keep' in g.msgs['Persist'].value and 'since this machine started' in g.details['Persist'].value, g.msgs['Persist'].value

def bootstrap_cell(nb):
    "The one-cell bootstrap as a page shows it, without its `#|` flags and the pip line (persistlab is installed here)"
    src, = [''.join(c['source']) for c in json.loads((Path(__file__).parent.parent/'nbs'/nb).read_text())['cells']
            if c['cell_type'] == 'code' and '%load_ext persistlab' in ''.join(c['source'])]
    return '\n'.join(l for l in src.splitlines() if not l.startswith(('#|', '!pip')))

def test_the_bootstrap_cell_shows_what_persist_did_and_the_form(tmp_path):
    "A first Colab session pasting the one cell sees `.local` saved, `.ssh` skipped with its note, and the form"
    cell = bootstrap_cell('30_bootstrap.ipynb')
    assert bootstrap_cell('21_guide_colab.ipynb') == cell  # the guide shows the same cell
    fake = tmp_path/'fake'; (fake/'google/colab').mkdir(parents=True)
    (fake/'google/__init__.py').write_text(''); (fake/'google/colab/__init__.py').write_text(''); (fake/'google/colab/drive.py').write_text(FAKE_DRIVE)
    h = tmp_path/'home'; (h/'.local/bin').mkdir(parents=True)  # a fresh VM: a .local, no .ssh
    env = {**os.environ, 'HOME': str(h), 'PYTHONPATH': os.pathsep.join([str(fake), os.environ.get('PYTHONPATH', '')]),
           'COLAB_RELEASE_TAG': 'release-colab', 'PERSISTLAB_STORAGE': str(tmp_path/'content/drive/MyDrive/persistlab'),
           'PERSISTLAB_RUNTIME': str(h/'.run')}
    outs = json.loads(run_nb([cell], tmp_path/'boot.ipynb', env))['cells'][0]['outputs']
    text = ''.join(''.join(o.get('data', {}).get('text/plain', o.get('text', ''))) for o in outs)
    from persistlab.core import zstd_via
    ext = 'zst' if zstd_via() else 'gz'  # zstd where the machine has the tool or Python's zstandard (Colab has the module)
    assert re.search(rf'^\.local +saved: \.local@py3\.\d+\.tar\.{ext}, ', text, re.M), text  # what the page promises
    assert re.search(r'^\.ssh +skipped: ~/\.ssh does not exist here .*kept once it exists: %sshsetup saves .*$', text, re.M), text
    assert text.index('Mounted at') < re.search(r'^\.local +saved', text, re.M).start() < text.index('VBox('), text  # the table, then the form
    assert any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in outs), text[:3000]  # the form
