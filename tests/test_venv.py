"The README's main job as a newcomer runs it: `python3 -m venv v && . v/bin/activate && pip install . && persistlab-demo`"
import os, shutil, subprocess, tempfile, textwrap
from pathlib import Path
import pytest
from conftest import ROOT, IS_ROOT

def _py3():
    "Debian's own python3 when it can make venvs (a fresh machine's, readable by a normal user: pyenv here is under /root)"
    sysp = '/usr/bin/python3'
    if os.access(sysp, os.X_OK) and subprocess.run([sysp, '-c', 'import ensurepip, venv'], capture_output=True).returncode == 0: return sysp
    return shutil.which('python3')
PY3 = _py3()

def _env(**kw):
    "The user's environment without anything that would import persistlab from this checkout instead of the venv"
    e = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONNOUSERSITE', 'VIRTUAL_ENV')}
    return {**e, **kw}

@pytest.fixture(scope='module')
def venv():
    "A fresh venv with a copy of the checkout pip-installed as a user would (not editable), whatever pip resolves today"
    base = Path(tempfile.mkdtemp(prefix='persistlab-venv-')); os.chmod(base, 0o755)  # a normal user runs it too
    src = base/'persistlab-src'; src.mkdir()
    for f in ('pyproject.toml', 'README.md', 'LICENSE'): shutil.copy(ROOT/f, src/f)
    shutil.copytree(ROOT/'persistlab', src/'persistlab', ignore=shutil.ignore_patterns('__pycache__'))
    v = base/'v'
    subprocess.run([PY3, '-m', 'venv', str(v)], check=True, env=_env())
    # the README's commands, typed into bash as the user would
    r = subprocess.run(['bash', '-c', f'. {v}/bin/activate && cd {src} && pip install -q . 2>&1 | grep -v -e "^WARNING: Location" ; '
                        'test ${PIPESTATUS[0]} = 0'], env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    yield v
    shutil.rmtree(base, ignore_errors=True)

def _demo(v, tmp, user=None):
    cmd = ['bash', '-c', f'. {v}/bin/activate && persistlab-demo']
    if user: cmd = ['setpriv', f'--reuid={user}', f'--regid={user}', '--clear-groups', *cmd]
    return subprocess.run(cmd, env=_env(HOME=str(tmp/'home'), TMPDIR=str(tmp)), cwd=tmp, capture_output=True, text=True, timeout=120)

def test_readme_main_job_in_a_fresh_venv(venv, tmp_path):
    (tmp_path/'home').mkdir()
    r = _demo(venv, tmp_path)
    assert r.returncode == 0 and 'demo passed: nothing lost, everything back' in r.stdout, r.stdout + r.stderr
    assert 'hello from a persisted ~/.local' in r.stdout and 'fresh-home/.local/lib/' in r.stdout
    assert subprocess.run([venv/'bin/python', '-c', 'import site; assert not site.ENABLE_USER_SITE']).returncode == 0  # the trap is real
    assert list(tmp_path.iterdir()) == [tmp_path/'home']  # sandbox removed

@pytest.mark.skipif(not IS_ROOT, reason='switching to a normal user needs root (run as a normal user, the test above is that case)')
def test_readme_main_job_as_a_normal_user(venv):
    tmp = Path(tempfile.mkdtemp(prefix='persistlab-user-'))
    try:
        (tmp/'home').mkdir(); os.chown(tmp, 65534, 65534); os.chown(tmp/'home', 65534, 65534)
        r = _demo(venv, tmp, user=65534)  # nobody: no sudo, no root, its own home and TMPDIR
        assert r.returncode == 0 and 'demo passed' in r.stdout, r.stdout + r.stderr
        assert os.stat(tmp/'home').st_uid == 65534
    finally: shutil.rmtree(tmp, ignore_errors=True)

def test_magics_in_the_venv_ipython(venv, tmp_path):
    "The IPython pip resolves today (9.x at the time of writing) loads the extension, shows help and runs %persist"
    home, st = tmp_path/'home', tmp_path/'storage'; (home/'.local/bin').mkdir(parents=True); st.mkdir()
    code = textwrap.dedent('''
        import IPython; print('IPYTHON', IPython.version_info[0])
        %load_ext persistlab
        %persist .local
        r = %persist --list
        print('LIST', [tuple(x[:2]) for x in r])
        ''').strip()
    r = subprocess.run([venv/'bin/python', '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input=code + '\nexit\n', capture_output=True, text=True, timeout=120,
                       env=_env(HOME=str(home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st), TMPDIR=str(tmp_path)))
    out = r.stdout + r.stderr
    assert "LIST [('.local', 'linked')]" in out and 'Traceback' not in out and 'Error' not in out, out
    assert (home/'.local').is_symlink()
