"""ipywidgets 7 in a real browser: Jupyter Notebook 6.5 with widgetsnbextension 3.6 (the widget protocol Colab's front end
speaks), Colab's pins in a venv of their own (tools/install-widgets7.sh; .ci/run builds it), Debian's Chromium clicking the form"""
import os, re, sys, json, time, shutil, signal, subprocess
from pathlib import Path
import pytest
from persistlab import procs

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
PY7 = os.environ.get('PERSISTLAB_TEST_WIDGETS7', '')
ARTIFACTS = Path(__file__).parent/'artifacts'
pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason='needs Debian chromium (.ci/run installs it)'),
              pytest.mark.skipif(not (PY7 and Path(PY7).exists()),
                                 reason='PERSISTLAB_TEST_WIDGETS7: the python of tools/install-widgets7.sh (.ci/run sets it)')]
# what the widget manager logs when a model the kernel sent cannot be drawn (the form then shows nothing at all)
BROKEN = re.compile(r'Could not create a model|_deserialize_state|Could not create a view|Error rendering|not found in (module|registry)')

# a second form whose engine draws a progress bar (tqdm, as the real engines do), left in place when done
BARS = """import time, persistlab
from tqdm.auto import tqdm
class Slow:
    def status(self, **k): return persistlab.core.Report([])
    def save(self, **k):
        for _ in tqdm(range(3), desc='saving-bar', leave=True): time.sleep(0.1)
persistlab.setup(engine=Slow())"""

@pytest.fixture
def nb6(tmp_path):
    pytest.importorskip('playwright', reason='.ci/run installs playwright')
    home, st, nbdir = tmp_path/'home', tmp_path/'storage', tmp_path/'nbs'
    for d in (home, st, nbdir): d.mkdir()
    (home/'.local/bin').mkdir(parents=True); (home/'.local/bin/tool').write_text('x')
    (home/'.ssh').mkdir(); (home/'.ssh/config').write_text('Host x\n')
    cells = ['%load_ext persistlab\n%persistlab', BARS]
    nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': c} for c in cells],
          'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}
    (nbdir/'form.ipynb').write_text(json.dumps(nb))
    port, token = procs.free_port(), 'browser7-test-token'
    # the kernel is the venv's Python (Colab's pins) importing this checkout; nothing of this machine's site-packages
    env = {'PATH': f'{Path(PY7).parent}:{os.environ["PATH"]}', 'LANG': 'C.UTF-8', 'HOME': str(home), 'PYTHONPATH': str(ROOT),
           'PERSISTLAB_PLATFORM': 'local', 'PERSISTLAB_STORAGE': str(st), 'PERSISTLAB_RUNTIME': str(tmp_path/'run'),
           'JUPYTER_RUNTIME_DIR': str(tmp_path/'jrt'), 'JUPYTER_CONFIG_DIR': str(tmp_path/'jcfg'), 'JUPYTER_DATA_DIR': str(tmp_path/'jdata'),
           'XDG_CACHE_HOME': str(tmp_path/'cache'), 'TMPDIR': str(tmp_path)}
    argv = [PY7, '-m', 'notebook', '--no-browser', '--ip=127.0.0.1', f'--port={port}', f'--NotebookApp.token={token}',
            f'--NotebookApp.notebook_dir={nbdir}']
    if os.geteuid() == 0: argv.append('--allow-root')
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path/'nb.log', 'w'), start_new_session=True)
    try:
        for _ in range(600):
            if procs.port_open(port) or p.poll() is not None: break
            time.sleep(0.1)
        if not procs.port_open(port): raise AssertionError((tmp_path/'nb.log').read_text()[-3000:])
        yield dict(url=f'http://127.0.0.1:{port}/notebooks/form.ipynb?token={token}', home=home, storage=st, log=tmp_path/'nb.log')
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try: p.wait(20)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()

def test_form_in_notebook6_with_ipywidgets7_persists_on_click(nb6):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    console = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                               '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'])
        try:
            page = b.new_page(viewport={'width': 1200, 'height': 900})
            page.set_default_timeout(60_000)  # a loaded 2-core machine: a click may wait for a busy page
            page.on('console', lambda m: console.append(f'{m.type}: {m.text}'))
            page.on('pageerror', lambda e: console.append(f'pageerror: {e}'))
            page.goto(nb6['url'])
            page.wait_for_selector('#kernel_indicator_icon.kernel_idle_icon', timeout=90_000)
            page.click('div.input_area')
            page.keyboard.press('Shift+Enter')
            btn = page.locator('div.output_area button.jupyter-button', has_text='Persist').first
            for _ in range(600):  # the form, or the widget manager saying it cannot draw it
                if btn.is_visible() or any(BROKEN.search(c) for c in console): break
                page.wait_for_timeout(100)
            if not btn.is_visible():
                page.screenshot(path=str(ARTIFACTS/'form7-timeout.png'))
                raise AssertionError('the form did not render; the page said:\n' + '\n'.join(console[-20:]))
            assert not [c for c in console if BROKEN.search(c)], '\n'.join(console)
            page.screenshot(path=str(ARTIFACTS/'form7.png'))
            btn.click()
            for _ in range(300):
                if (nb6['home']/'.local').is_symlink(): break
                time.sleep(0.1)
            try: page.wait_for_selector(r'div.output_area >> text=/Persist: \.local [^;]*linked[^;]*; \.ssh [^;]*(linked|copied)/', timeout=30_000)
            except Exception:
                page.screenshot(path=str(ARTIFACTS/'form7-after-timeout.png')); raise
            page.screenshot(path=str(ARTIFACTS/'form7-after.png'))
            page.click('div.input_area >> nth=1'); page.keyboard.press('Shift+Enter')  # the form with a bar
            page.locator('div.cell >> nth=1').locator('button.jupyter-button', has_text='Save snapshots').click()
            cell = page.locator('div.cell >> nth=1')
            try: cell.locator('text=/saving-bar:.100%/').wait_for(timeout=30_000)
            except Exception:
                page.screenshot(path=str(ARTIFACTS/'form7-bar-timeout.png'), full_page=True); print(cell.inner_text()); raise
            assert cell.locator('div.output_area').count() == 1 and cell.locator('.progress-bar').count() == 1  # in the form, not beside it
        finally: b.close()
    assert not [c for c in console if BROKEN.search(c)], '\n'.join(console)
    assert os.readlink(nb6['home']/'.local') == str(nb6['storage']/'.local')
    assert (nb6['storage']/'.ssh/config').read_text() == 'Host x\n'

UPLOAD = """
import sys, threading
from pathlib import Path
import ipywidgets as W
from persistlab.platforms import detect
from persistlab.forms import Setup
assert W.__version__ == '7.7.1', W.__version__
class Keys:
    def __init__(self): self.got = []
    def status(self, **k):
        from persistlab.core import Report
        return Report([])
    def setup_keys(self, **k):
        self.got.append(k.get('import_from'))
        from persistlab.ssh import Keys
        return Keys([('id_ed25519', 'imported', '')], 'ssh-ed25519 AAAAC3Nza test@box', Path('/x/id_ed25519'))
e = Keys()
f = Setup(detect(env=dict(HOME=sys.argv[1], PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=sys.argv[1])), engine=e)
u = f.upload  # what the browser sends when a file is chosen, in ipywidgets 7: metadata and data, then the counter
u.metadata = [dict(name='id_ed25519', type='', size=3, lastModified=0)]; u.data = [b'KEY']; u._counter += 1
f.wait()
assert e.got == [b'KEY'], e.got
assert u.data == [] and u.metadata == [] and u.value == {}, (u.data, u.value)  # the key's bytes left the widget
assert 'key imported' in f.msgs['SSH'].value and 'ssh-ed25519' in f.pub.value, f.msgs['SSH'].value
Setup(detect(env=dict(HOME=sys.argv[1], PERSISTLAB_PLATFORM='colab', PERSISTLAB_STORAGE=sys.argv[1])), engine=e)._ipython_display_()
print('ok')  # above: no word about Colab's widget manager, which ipywidgets 7 does not need
"""

def test_form_works_under_ipywidgets7_without_a_browser(tmp_path):
    "Colab's ipywidgets 7.7.1: an uploaded key reaches the engine and its bytes leave the widget (7 keeps them in `data`)"
    r = subprocess.run([PY7, '-c', UPLOAD, str(tmp_path)], capture_output=True, text=True, timeout=120,
                       env={'PATH': os.environ['PATH'], 'HOME': str(tmp_path), 'PYTHONPATH': str(ROOT), 'LANG': 'C.UTF-8',
                            'PERSISTLAB_RUNTIME': str(tmp_path/'run')})
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == 'ok' and 'widget manager' not in r.stdout, r.stdout + r.stderr
