"The magics in a real IPython shell, and the console scripts as a user runs them"
import os, re, sys, subprocess, textwrap, shutil
from pathlib import Path
import pytest
from conftest import make_tree, ROOT

def ipython(sb, code, timeout=120, **kw):
    "Type `code` into a real interactive IPython, one cell per line (so an error does not stop the rest)"
    return subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                          input=textwrap.dedent(code).strip() + '\nexit\n', env=sb.env(**kw), capture_output=True, text=True, timeout=timeout)

def test_import_registers_nothing_and_stays_light(sb):
    r = sb.py("import sys, persistlab; print(sorted(m for m in ('IPython', 'ipywidgets', 'requests', 'tqdm') if m in sys.modules))")
    assert r.stdout.strip() == '[]'

@pytest.mark.skipif(sys.prefix != sys.base_prefix, reason='pip install --user is refused inside a virtualenv')
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
    r = ipython(sb, f'''
        %load_ext persistlab
        %persist .local --create
        import subprocess, sys, shutil
        r = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--user', '--no-index', '--no-deps', '--no-build-isolation', '{pkg}'], capture_output=True, text=True)
        print('PIP', r.returncode, r.stderr[-500:])
        import plpkg_demo; print('IMPORTED', plpkg_demo.X, plpkg_demo.__file__)
        print('BIN', shutil.which('plpkg-demo'))
        ''', timeout=300)
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
