"The magics in a real IPython shell, and the console scripts as a user runs them"
import os, re, sys, subprocess, textwrap, shutil, tempfile, contextlib
from pathlib import Path
import pytest
from conftest import make_tree, ROOT

def ipython(sb, code, timeout=120, python=sys.executable, **kw):
    "Type `code` into a real interactive IPython, one cell per line (so an error does not stop the rest)"
    return subprocess.run([python, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                          input=textwrap.dedent(code).strip() + '\nexit\n', env=sb.env(**kw), capture_output=True, text=True, timeout=timeout)

def test_import_registers_nothing_and_stays_light(sb):
    r = sb.py("import sys, persistlab; print(sorted(m for m in ('IPython', 'ipywidgets', 'requests', 'tqdm') if m in sys.modules))")
    assert r.stdout.strip() == '[]'

def user_site_python() -> tuple:
    "A Python with a user site (as on a platform), and the PYTHONPATH it needs; in a virtualenv (none), the one it was made from"
    if sys.prefix == sys.base_prefix: return sys.executable, {}
    import site  # the base Python finds IPython, pip and persistlab's dependencies in the venv's site-packages
    base = Path(sys.base_prefix)/'bin'/f'python{sys.version_info.major}.{sys.version_info.minor}'
    return str(base), dict(PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get('PYTHONPATH'), *site.getsitepackages()])),
                           PIP_BREAK_SYSTEM_PACKAGES='1')  # Debian's Python is marked externally managed (PEP 668); platform images are not

def test_persist_local_then_pip_install_user_imports_without_restart(sb, tmp_path):
    pkg = tmp_path/'plpkg'; (pkg/'plpkg_demo').mkdir(parents=True)
    (pkg/'plpkg_demo/__init__.py').write_text('X = 42\ndef main(): print("plpkg-demo ran")\n')
    (pkg/'pyproject.toml').write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "plpkg-demo"
        version = "1.0"
        [project.scripts]
        plpkg-demo = "plpkg_demo:main"
        '''))
    py, extra = user_site_python()
    r = ipython(sb, f'''
        %load_ext persistlab
        %persist .local --create
        import subprocess, sys, shutil
        r = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--user', '--no-index', '--no-deps', '--no-build-isolation', '{pkg}'], capture_output=True, text=True)
        print('PIP', r.returncode, r.stderr[-500:])
        import plpkg_demo; print('IMPORTED', plpkg_demo.X, plpkg_demo.__file__)
        print('BIN', shutil.which('plpkg-demo'))
        ''', timeout=300, python=py, **extra)
    assert 'PIP 0' in r.stdout, r.stdout + r.stderr
    assert f'IMPORTED 42 {sb.home}/.local/lib' in r.stdout, r.stdout + r.stderr
    assert (sb.storage/'.local/bin/plpkg-demo').exists() and f'BIN {sb.home}/.local/bin/plpkg-demo' in r.stdout

def test_magic_help_errors_list_and_restore(sb):
    make_tree(sb.home/'.local', 10)
    r = ipython(sb, '''
        %load_ext persistlab
        %persist?
        %persist --bogus
        %persist /etc/hosts
        %persist .local
        r = %persist --list
        print(repr(r))
        ''')
    out = r.stdout + r.stderr
    assert 'Keep home paths in persistent storage' in out and '--undo PATH' in out  # %persist? shows the help
    assert 'unrecognized arguments: --bogus' in out
    assert '/etc/hosts: not under your home' in out and 'Traceback' not in out
    assert re.search(r'^\.local +linked', out, re.M) and (sb.home/'.local').is_symlink()

def test_console_scripts(sb):
    make_tree(sb.home/'.local', 10); (sb.home/'.gitconfig').write_text('[user]')
    bindir = Path(sys.executable).parent
    exe = lambda n: shutil.which(n) or str(bindir/n)
    r = sb.run(exe('persistlab-persist'), '.local', '.gitconfig')
    assert re.search(r'^\.local +linked', r.stdout, re.M) and (sb.home/'.gitconfig').is_symlink()
    r = sb.run(exe('persistlab-status'))
    assert re.search(r'^\.gitconfig +linked', r.stdout, re.M)
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = sb.run(exe('persistlab-restore'), home=fresh)
    assert (fresh/'.local').is_symlink() and re.search(r'^\.gitconfig +linked to', r.stdout, re.M)
    r = sb.run(exe('persistlab-persist'), '/etc/passwd', check=False)
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and r.stderr.startswith('persistlab: /etc/passwd: not under your home')
    r = sb.run(exe('persistlab-persist'), PERSISTLAB_STORAGE='', check=False)  # no paths: what to type, not 'pass --to DIR'
    assert r.returncode == 1 and r.stderr.startswith('persistlab: name paths to persist: `persistlab-persist .local .ssh`'), r.stderr
    r = sb.run(exe('persistlab-status'), PERSISTLAB_STORAGE='', check=False)
    assert r.returncode == 1 and 'pass --to DIR or set PERSISTLAB_STORAGE' in r.stderr

def test_demo_command(tmp_path):
    r = subprocess.run([shutil.which('persistlab-demo') or 'persistlab-demo'], capture_output=True, text=True, timeout=120,
                       env={**os.environ, 'TMPDIR': str(tmp_path)})
    assert r.returncode == 0 and 'demo passed: nothing lost, everything back' in r.stdout, r.stdout + r.stderr
    assert 'hello from a persisted ~/.local' in r.stdout and not list(tmp_path.iterdir())  # sandbox removed

def test_readme_matches_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/'tools/readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_quotes_are_removed_as_a_shell_would(sb):
    (sb.home/'my notes').mkdir(); (sb.home/'my notes/a.txt').write_text('a\n')
    r = ipython(sb, '''
        %load_ext persistlab
        %persist "my notes"
        %sshsetup --no-check --name "Ada Lovelace" --email 'ada@example.org'
        %sshsetup --name "Ada
        ''', GIT_CONFIG_NOSYSTEM=1)
    out = r.stdout + r.stderr
    assert (sb.home/'my notes').is_symlink() and (sb.storage/'my notes/a.txt').read_text() == 'a\n', out
    g = lambda k: subprocess.run(['git', 'config', '--global', k], env=sb.env(), capture_output=True, text=True).stdout.strip()
    assert (g('user.name'), g('user.email')) == ('Ada Lovelace', 'ada@example.org'), out
    assert 'No closing quotation' in out and 'Traceback' not in out

def test_rough_edges(sb):
    r = ipython(sb, '''
        %load_ext persistlab
        %persistlab?
        %tunnel -s 8000
        %persist -s
        import persistlab.persist as P; P.status = lambda *a, **k: 1/0
        %persist --list
        %unload_ext persistlab
        %persist --list
        ''')
    out = r.stdout + r.stderr
    assert 'Start sshd `%sshsetup --server`' in out and 'PersistlabMagics.storage' in out  # a real docstring
    assert out.count('unrecognized arguments: -s') == 2  # -s meant --save in one magic and --stop in another: gone from both
    assert 'ZeroDivisionError' in out and 'Traceback' in out  # an unexpected error is not hidden as one line
    assert 'Line magic function `%persist` not found' in out  # unloaded means gone

def test_bogus_platform_is_one_line_at_load(sb):
    r = ipython(sb, '''
        %load_ext persistlab
        %persist --list
        ''', PERSISTLAB_PLATFORM='bogus')
    out = r.stdout + r.stderr
    assert 'Traceback' not in out, out
    lines = [l for l in out.splitlines() if "PERSISTLAB_PLATFORM='bogus'" in l]
    assert len(lines) == 2 and all('valid names: paperspace, colab' in l for l in lines), out

def test_settings_set_once(sb, tmp_path):
    other = tmp_path/'other'; other.mkdir(); (sb.home/'.bashrc').write_text('# mine\n')
    prof = sb.home/'.ipython/profile_default'; prof.mkdir(parents=True)
    (prof/'ipython_config.py').write_text(f'c.PersistlabMagics.storage = {str(other)!r}\n')
    r = subprocess.run([sys.executable, '-m', 'IPython', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                       input='%load_ext persistlab\n%persist .bashrc\n%config PersistlabMagics\nexit\n', env=sb.env(), capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert os.readlink(sb.home/'.bashrc') == str(other/'.bashrc'), out
    assert 'PersistlabMagics.autorestore' in out and 'PersistlabMagics.provider' in out

def test_cli_help_and_errors(sb):
    exe = sb.base/'persistlab-status'  # what pip's console script does, against this checkout
    exe.write_text('import sys\nfrom persistlab.cli import status_cli\nsys.exit(status_cli())\n')
    r = sb.run(sys.executable, exe, '--help', PYTHONPATH=ROOT)
    assert '--to DIR' in r.stdout and '(str)' not in r.stdout, r.stdout + r.stderr
    assert 'packages kept with `persistlab-packages`' in ' '.join(r.stdout.split()), r.stdout  # --list's packages rows, said
    r = sb.run(sys.executable, exe, check=False, PERSISTLAB_STORAGE='', PYTHONPATH=ROOT)
    assert r.returncode == 1 and r.stderr.startswith('persistlab') and 'persistlab: persistlab' not in r.stderr, r.stderr
    assert r.stderr.count('\n') == 1, r.stderr
    for f in ('persist_cli', 'restore_cli', 'packages_cli', 'demo_cli'):  # no `(str)` placeholders in any help
        exe.write_text(f'import sys\nfrom persistlab.cli import {f}\nsys.exit({f}())\n')
        r = sb.run(sys.executable, exe, '--help', PYTHONPATH=ROOT)
        assert '(str)' not in r.stdout and 'usage:' in r.stdout, r.stdout

def test_load_ext_imports_no_engine(sb):
    "What keeps `%load_ext` fast (bench/startup.py): engines wait for the first magic; archive platforms restore at load"
    code = '''
        %load_ext persistlab
        import sys; print('LOADED', sorted(m for m in sys.modules if m.startswith('persistlab.') or m in ('ipywidgets', 'requests', 'tqdm')))
        '''
    r = ipython(sb, code)
    # storage (0.6 ms): where saved packages may wait, as the platform, %config or an earlier --to says; no engine
    assert "LOADED ['persistlab.core', 'persistlab.magics', 'persistlab.platforms', 'persistlab.storage']" in r.stdout, r.stdout + r.stderr
    r = ipython(sb, code, PERSISTLAB_PLATFORM='kaggle')  # an archive platform: its engine is needed at load
    assert 'persistlab.archive' in r.stdout.split('LOADED')[1], r.stdout + r.stderr

def test_every_environment_variable_is_in_the_settings_table():
    import json
    code = '\n'.join(p.read_text() for p in (ROOT/'persistlab').glob('*.py'))
    names = set(re.findall(r"\b(PERSISTLAB_[A-Z0-9_]+)\b", code)) - {'PERSISTLAB_'}
    md = ''.join(''.join(c['source']) for c in json.loads((ROOT/'nbs/index.ipynb').read_text())['cells'])
    table = md[md.index('## Settings you set once'):md.index('## Guides')]
    assert names and not {n for n in names if f'`{n}`' not in table}, sorted(n for n in names if f'`{n}`' not in table)

def test_docs_sidebar_lists_every_page_and_only_pages():
    listed = re.findall(r'^\s+- (\S+)$', (ROOT/'nbs/sidebar.yml').read_text(), re.M)
    assert sorted(listed) == sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb')), listed

def test_load_ext_on_a_fresh_home_says_what_is_not_restored(sb, tmp_path):
    "A rented box with no startup hook: %load_ext says in one line which kept paths this home lacks, and how to restore them"
    make_tree(sb.home/'.local', n_files=5); (sb.home/'.gitconfig').write_text('[user]\n\tname = A\n')
    r = ipython(sb, '%load_ext persistlab\n%persist .local .gitconfig')
    assert r.returncode == 0 and (sb.home/'.local').is_symlink(), r.stdout + r.stderr
    fresh = tmp_path/'fresh'; fresh.mkdir()
    r = ipython(sb, '%load_ext persistlab\n%persist -r\n%reload_ext persistlab\nprint("AFTER")', home=fresh)
    line = [l for l in r.stdout.splitlines() if 'not in this home yet' in l]
    assert len(line) == 1 and '.local, .gitconfig' in line[0] and '%persist -r' in line[0], r.stdout + r.stderr  # once: not after -r
    assert (fresh/'.local').is_symlink() and (fresh/'.gitconfig').is_symlink(), r.stdout + r.stderr

def test_persist_ipython_keeps_the_running_sessions_history(sb):
    "`%persist .ipython` into storage on another filesystem, in the IPython whose history database is in it: the cells before and "
    "after are all in storage's history (IPython had found its database gone, renamed it as corrupt and started an empty one)"
    st = Path(tempfile.mkdtemp(dir='/dev/shm')) if os.path.isdir('/dev/shm') else None
    if st is None or os.stat(st).st_dev == os.stat(sb.home).st_dev: pytest.skip('needs /dev/shm on another filesystem than home, as storage')
    try:
        r = subprocess.run([sys.executable, '-m', 'IPython', '--no-banner', '--simple-prompt', '--colors=NoColor'], timeout=120,
                           input=f'x_before = 1\n%load_ext persistlab\n%persist .ipython --to {st}/keep\ny_after = 2\nexit\n',
                           env=sb.env(IPYTHONDIR=sb.home/'.ipython', PERSISTLAB_STORAGE=''), cwd=sb.home, capture_output=True, text=True)
        assert r.returncode == 0 and 'readonly' not in r.stdout + r.stderr and 'corrupt' not in r.stdout + r.stderr, r.stdout + r.stderr
        assert (sb.home/'.ipython').is_symlink() and not list((st/'keep/.ipython/profile_default').glob('history-corrupt*'))
        import sqlite3
        with contextlib.closing(sqlite3.connect(st/'keep/.ipython/profile_default/history.sqlite')) as db:
            got = [s for s, in db.execute('select source from history order by session, line')]
        assert got[0] == 'x_before = 1' and got[-1] == 'y_after = 2', got
    finally: shutil.rmtree(st, ignore_errors=True)
