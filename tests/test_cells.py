"A setup cell as users write it, run by a real kernel (nbclient): every magic's result shown once, help that helps"
import os, re, sys, json, getpass
from pathlib import Path
import pytest
from conftest import ROOT
from persistlab import procs

def run_cells(cells, env, timeout=120, kernel=os.environ.get('PERSISTLAB_TEST_KERNEL', 'python3')) -> list:
    "Execute `cells` in a fresh kernel with `env`, as a notebook does (an error does not stop the rest); each cell's outputs"
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=True).execute(env=env, cwd=env['HOME'])
    return [c.outputs for c in nb.cells]

def text(outs) -> str:
    "Everything a cell showed, as its plain text"
    return '\n'.join(o.get('text') or o.get('data', {}).get('text/plain') or o.get('evalue', '') for o in outs)

P_QUICK, P_NGROK = procs.free_port(), procs.free_port()
STANDINS = Path(__file__).parent/'standins'
KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxE2kQ0r4y2mE9vJ3Yw7p9bq8m2QK7p1mFhGm3JY6c2 me@laptop'
CELLS = dict(  # one kernel for every test here: a kernel's start is most of the time they take
    load='%load_ext persistlab',
    setup='%persist .local\n%sshsetup --revoke-risk\nr = %tunnel --list\n%persist --list',
    later='r',
    assigned='l = %persist --list\nl',
    values='print(type(r).__name__, len(l), l[0][:2])',
    help='%persist --help', h='%tunnel -h', plhelp='%persistlab --help', plbad='%persistlab bogus',
    lsit='%persist --lsit', typo='%persist .locla', key=f'%sshsetup --key {KEY}', undo='%persist --undo', stop='%tunnel --stop', stopbad='%tunnel --stop abc',
    offline='%codeserver -p none',
    dsmlp='%sshsetup --forward http://dsmlp-login.ucsd.edu:12733/user/ada/?token=abc123',
    bare='%sshsetup --forward dsmlp-login.ucsd.edu',
    quick=f't = %tunnel {P_QUICK} -p cloudflared',
    drop=f"""import os, time
from persistlab import procs
old = t.url; os.kill(procs.get('tunnel-{P_QUICK}').pid, 9)  # the quick tunnel drops; the supervisor brings it back elsewhere
t0 = time.monotonic()
while t.url == old and time.monotonic() - t0 < 30: time.sleep(0.1)
time.sleep(0.5); print('MOVED', old, t.url)""",
    ngrok=f'%tunnel {P_NGROK} --tcp -p ngrok',  # what `%sshsetup --server --tunnel ngrok` opens to sshd
    doctor='%persistlab doctor',
)

@pytest.fixture(scope='module')
def cells(tmp_path_factory):
    "The outputs of CELLS, by name, run in one fresh kernel; then what the kernel started is stopped"
    tmp = tmp_path_factory.mktemp('cells')
    home, st = tmp/'home', tmp/'st'
    (home/'.local').mkdir(parents=True); st.mkdir()
    dead = f'http://127.0.0.1:{procs.free_port()}'  # offline: GitHub and the release download do not answer
    env = {k: v for k, v in os.environ.items() if k not in ('PERSISTLAB_CODE_SERVER', 'PERSISTLAB_RUNTIME')}
    env.update(HOME=str(home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st), PERSISTLAB_RUNTIME=str(tmp/'run'),
               PYTHONPATH=str(ROOT), JUPYTER_PLATFORM_DIRS='1', PERSISTLAB_GITHUB_API=dead, PERSISTLAB_CODE_SERVER_URL=dead + '/cs.tgz',
               PATH=os.pathsep.join(p for p in os.environ['PATH'].split(os.pathsep) if not (Path(p)/'code-server').exists()),
               PERSISTLAB_CLOUDFLARED=str(STANDINS/'cloudflared'), FAKE_CF_MODE='ok', PERSISTLAB_NGROK=str(STANDINS/'ngrok'),
               NGROK_AUTHTOKEN='test-authtoken')
    try: yield dict(zip(CELLS, run_cells(list(CELLS.values()), env)), run=tmp/'run')
    finally:
        old = os.environ.get('PERSISTLAB_RUNTIME'); os.environ['PERSISTLAB_RUNTIME'] = str(tmp/'run')
        try: procs.stop_all()
        finally:
            if old is None: del os.environ['PERSISTLAB_RUNTIME']
            else: os.environ['PERSISTLAB_RUNTIME'] = old

def test_every_magic_in_a_cell_shows_once_and_stays_a_value(cells):
    cell = cells['setup']
    assert [o['output_type'] for o in cell] == ['display_data'] * 3 + ['execute_result'], cell  # the last line: Out[n], as any value
    assert 'linked' in text(cell[:1]) and text(cell[1:2]).startswith('persistlab: there was no --accept-risk') and 'nothing' in text(cell[2:3])
    assert text(cell[3:]).startswith('.local') and '| <code>.local</code> | linked' in cell[3]['data']['text/markdown']  # a table, once
    assert len(cells['later']) == 1 and '**tunnels**' in cells['later'][0]['data']['text/markdown']  # a later cell shows the value
    assert len(cells['assigned']) == 1 and text(cells['assigned']).startswith('.local')  # assigned and shown in one cell: once
    assert text(cells['values']) == "Report 1 ('.local', 'linked')\n"

def test_help_and_mistakes_say_how(cells):
    t = {k: text(v) for k, v in cells.items() if k != 'run'}
    assert t['help'].startswith('usage: %persist [--to ') and '-u PATH, --undo PATH' in t['help'] and 'Error' not in t['help']
    assert '--sync [FOLDER] ' in t['help'] and '--to DIR|URL ' in t['help'] and not re.search(r'--[\w-]+ <', t['help'])
    assert t['h'].startswith('usage: %tunnel') and '--stop PORT|all' in t['h']
    assert '%sshsetup --help' in t['plhelp'] and 'Start sshd `%sshsetup --server`' in t['plhelp']
    assert 'valid: nothing (the form)' in t['plbad']
    assert 'unrecognized arguments: --lsit; did you mean --list?' in t['lsit']
    assert 'exists (did you mean ~/.local?): nothing to persist yet' in t['typo'], t['typo']  # a path typo
    assert re.search(r'unrecognized arguments: AAAA\S+ me@laptop; --key takes one value: quote it, --key "ssh-ed25519 AAAA\S+ me@laptop"', t['key']), t['key']
    assert '--undo needs PATH: bring PATH back into home' in t['undo'] and '--stop needs PORT|all' in t['stop']
    assert "port 'abc' is not a number; use 1-65535, or all" in t['stopbad']
    assert 'offline?); point PERSISTLAB_CODE_SERVER at a code-server you have' in t['offline'] and 'SHA256' not in t['offline'], t['offline']
    assert 'Traceback' not in ''.join(t.values())

def test_dsmlp_lesson_forward_from_the_url_the_launch_script_printed(cells):
    "USERS.md section 4: the login node's port from the URL, the ssh -N -L line, and the local URL to open (with the token pasted)"
    t = text(cells['dsmlp'])
    assert f'ssh -N -L 8889:127.0.0.1:12733 {getpass.getuser()}@dsmlp-login.ucsd.edu' in t, t
    assert 'http://localhost:8889/user/ada/?token=abc123' in t
    assert 'no running Jupyter server found here' in text(cells['bare']) and '--forward http://LOGIN_HOST:PORT' in text(cells['bare'])

def test_a_tunnel_back_at_a_new_url_shows_it_in_the_cell_that_opened_it(cells):
    moved = text(cells['drop']).split()
    assert moved[0] == 'MOVED' and moved[1] != moved[2] and moved[2].endswith('.trycloudflare.com'), moved
    (out,) = cells['quick']  # the cell that opened it: its one output, replaced in place
    assert moved[2] in out['data']['text/markdown'] and f'{moved[1]} no longer works' in out['data']['text/markdown']
    assert f'[{moved[1]}]' not in out['data']['text/markdown'] and moved[2] in out['data']['text/plain']

def test_an_ngrok_tunnel_outlives_the_kernel(cells):
    import requests
    pr = procs.Proc.load(f'tunnel-{P_NGROK}', cells['run'])
    assert pr and pr.alive() and pr.info['url'].startswith('tcp://'), text(cells['ngrok'])  # the kernel is gone, ngrok is not
    api = re.search(r'addr=(127\.0\.0\.1:\d+)', pr.log.read_text())[1]
    assert requests.get(f'http://{api}/api/tunnels', timeout=5).json()['tunnels'][0]['public_url'] == pr.info['url']

def test_doctor_in_a_notebook(cells):
    (out,) = cells['doctor']; t = out['data']['text/plain']
    assert re.search(r'^platform +local: evidence: PERSISTLAB_PLATFORM=local', t, re.M), t
    assert re.search(r'^storage health +[\d.]+ [KMGT]?B free: writable: yes, symlinks: yes, exec bits: yes', t, re.M), t
    assert re.search(r'^entry +\.local: linked', t, re.M) and re.search(rf'^service +tunnel-{P_NGROK}: running, pid \d+, tcp://', t, re.M), t
    assert all(re.search(rf'^version +{n}: \d', t, re.M) for n in ('Python', 'persistlab', 'IPython', 'ipywidgets')), t
    assert 'secrets         set: NGROK_AUTHTOKEN' in t and 'test-authtoken' not in json.dumps(cells['doctor'])
    assert '```text' in out['data']['text/markdown']  # the same text, ready to paste

def test_doctor_in_a_shell_names_each_problem_and_its_fix(sb):
    from conftest import make_tree
    make_tree(sb.home/'.local', 5)
    exe = sb.base/'persistlab-doctor'; exe.write_text('import sys\nfrom persistlab.cli import doctor_cli\nsys.exit(doctor_cli())\n')
    sb.run(sys.executable, '-c', 'from persistlab.persist import persist; persist([".local"])', PYTHONPATH=ROOT)
    os.unlink(sb.home/'.local')  # a fresh instance that did not restore
    r = sb.run(sys.executable, exe, PYTHONPATH=ROOT, HF_TOKEN='hf_SECRETVALUE42', PATH='/usr/bin:/bin')
    assert re.search(r'^problem +\.local is not in home: fix: `%persist --restore`', r.stdout, re.M), r.stdout
    assert re.search(r'^problem +~/\.local/bin is not on PATH', r.stdout, re.M) and 'hf_SECRETVALUE42' not in r.stdout + r.stderr
    assert 'secrets         set: HF_TOKEN' in r.stdout
