"A real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by Playwright, clicking the %persistlab form"
import os, re, sys, json, time, shutil, signal, subprocess
from pathlib import Path
import pytest
from persistlab import procs

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason='needs Debian chromium (apt-get install chromium; .ci/run installs it)')
ARTIFACTS = Path(__file__).parent/'artifacts'

@pytest.fixture
def lab(tmp_path):
    pytest.importorskip('jupyterlab', reason='.ci/run installs jupyterlab'); pytest.importorskip('playwright', reason='.ci/run installs playwright')
    home, st, nbdir = tmp_path/'home', tmp_path/'storage', tmp_path/'nbs'
    for d in (home, st, nbdir): d.mkdir()
    (home/'.local/bin').mkdir(parents=True); (home/'.local/bin/tool').write_text('x')
    (home/'.ssh').mkdir(); (home/'.ssh/config').write_text('Host x\n')
    settings = tmp_path/'lab-settings/@jupyterlab/apputils-extension'; settings.mkdir(parents=True)
    (settings/'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
    nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': '%load_ext persistlab'},
                    {'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': '%persistlab'}],
          'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}
    (nbdir/'form.ipynb').write_text(json.dumps(nb))
    port, token = procs.free_port(), 'browser-test-token'
    env = {**os.environ, 'HOME': str(home), 'PERSISTLAB_PLATFORM': 'local', 'PERSISTLAB_STORAGE': str(st),
           'PERSISTLAB_RUNTIME': str(tmp_path/'run'), 'JUPYTERLAB_SETTINGS_DIR': str(tmp_path/'lab-settings'),
           'JUPYTER_RUNTIME_DIR': str(tmp_path/'jrt'), 'JUPYTER_CONFIG_DIR': str(tmp_path/'jcfg')}
    argv = [sys.executable, '-m', 'jupyterlab', '--ip=127.0.0.1', f'--port={port}', '--no-browser', f'--IdentityProvider.token={token}',
            f'--ServerApp.root_dir={nbdir}', '--ServerApp.open_browser=False']
    if os.geteuid() == 0: argv.append('--allow-root')
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path/'lab.log', 'w'), start_new_session=True)
    for _ in range(300):
        if procs.port_open(port): break
        time.sleep(0.1)
    else: raise AssertionError((tmp_path/'lab.log').read_text()[-3000:])
    yield dict(url=f'http://127.0.0.1:{port}/lab/tree/form.ipynb?token={token}', home=home, storage=st, log=tmp_path/'lab.log')
    os.killpg(p.pid, signal.SIGTERM)
    try: p.wait(20)
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()

def test_form_in_jupyterlab_persists_on_click(lab):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                               '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'])
        try:
            page = b.new_page(viewport={'width': 1200, 'height': 900})
            console = []  # the widget manager says here when it cannot draw a model (the form then shows nothing)
            page.on('console', lambda m: console.append(f'{m.type}: {m.text}'))
            page.goto(lab['url'])
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)  # the kernel is connected
            page.click('.jp-Cell .jp-InputArea-editor >> nth=0')
            page.keyboard.press('Shift+Enter')
            page.wait_for_selector('.jp-Cell .jp-InputPrompt >> text=[1]:', timeout=60_000)
            page.keyboard.press('Shift+Enter')
            btn = page.locator('.jp-OutputArea-output button.jupyter-button', has_text='Persist').first
            try: btn.wait_for(timeout=60_000)
            except Exception:
                page.screenshot(path=str(ARTIFACTS/'form-timeout.png')); raise
            page.screenshot(path=str(ARTIFACTS/'form.png'))
            btn.click()
            for _ in range(200):
                if (lab['home']/'.local').is_symlink(): break
                time.sleep(0.1)
            try: page.wait_for_selector(r'text=/Persist: \.local [^;]*linked[^;]*; \.ssh [^;]*(linked|copied)/', timeout=20_000)  # the engine's words
            except Exception:
                page.screenshot(path=str(ARTIFACTS/'form-after-timeout.png')); raise
            page.screenshot(path=str(ARTIFACTS/'form-after.png'))
        finally: b.close()
    assert not [c for c in console if re.search(r'Could not create a (model|view)|_deserialize_state', c)], '\n'.join(console)
    assert os.readlink(lab['home']/'.local') == str(lab['storage']/'.local')
    assert (lab['storage']/'.ssh/config').read_text() == 'Host x\n'

def screenshot(out):
    "The docs' picture of the form (nbs/images/form.png): JupyterLab in a fresh Paperspace replica, the form as a user sees it"
    import tempfile
    from playwright.sync_api import sync_playwright
    from replicas import VM, _dirs
    base = Path(tempfile.mkdtemp(prefix='persistlab-shot-'))
    vm = VM('paperspace', base/'vm', _dirs('paperspace', base, {}))
    try:
        vm.sh('mkdir -m 700 ~/.ssh && touch ~/.ssh/id_ed25519 && chmod 600 ~/.ssh/id_ed25519')  # a user who has keys
        nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': src}
                        for src in ('%load_ext persistlab', '%persistlab')],
              'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}
        (vm.notebooks/'Untitled.ipynb').write_text(json.dumps(nb))
        settings = base/'lab-settings/@jupyterlab/apputils-extension'; settings.mkdir(parents=True)
        (settings/'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false', 'checkForUpdates': False}))
        port, token = procs.free_port(), 'shot'
        vm.sh(f'JUPYTERLAB_SETTINGS_DIR={base}/lab-settings setsid python3 -m jupyterlab --allow-root --ip=127.0.0.1 --port={port} '
              f'--no-browser --IdentityProvider.token={token} --ServerApp.root_dir=/notebooks > {base}/lab.log 2>&1 < /dev/null &')
        for _ in range(300):
            if procs.port_open(port): break
            time.sleep(0.1)
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                                   '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'])
            try:
                page = b.new_page(viewport={'width': 1000, 'height': 700}, device_scale_factor=1)
                page.goto(f'http://127.0.0.1:{port}/lab/tree/Untitled.ipynb?token={token}')
                page.wait_for_selector("text=Python 3 (ipykernel) | Idle", timeout=60_000)
                page.click('.jp-Cell .jp-InputArea-editor >> nth=0')
                page.keyboard.press('Shift+Enter'); page.keyboard.press('Shift+Enter')
                page.locator('.jp-OutputArea-output button.jupyter-button', has_text='Persist').first.wait_for(timeout=60_000)
                time.sleep(1)
                page.locator('.jp-Notebook .jp-Cell').nth(1).screenshot(path=str(out))
            finally: b.close()
    finally: vm.close(); shutil.rmtree(base, ignore_errors=True)

if __name__ == '__main__':  # python tests/test_browser.py nbs/images/form.png (root: the replica needs a mount namespace)
    sys.path.insert(0, str(Path(__file__).parent)); screenshot(Path(sys.argv[1]).resolve())
