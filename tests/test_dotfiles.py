"""`%persist --dotfiles`: a real dotfiles repository (holman's, vendored) and small ones for each rule, cloned with the real git
over file:// and over ssh from the real sshd, on two machines (replicas) sharing one storage"""
import os, json, shutil, getpass, subprocess
from pathlib import Path
import pytest
from conftest import IS_ROOT, ROOT, start_sshd
from persistlab import dotfiles as D
from persistlab.dotfiles import SCRIPTS, DotfilesError, apply_dotfiles, parse_repo, recorded_dotfiles
from persistlab.platforms import detect

HOLMAN = ROOT/'tests/data/dotfiles/holman'
GIT_ID = dict(GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@example.org', GIT_COMMITTER_NAME='t', GIT_COMMITTER_EMAIL='t@example.org')
pytestmark = pytest.mark.skipif(not shutil.which('git'), reason='needs git (apt-get install git; .ci/run installs it)')

def git(*a, cwd):
    return subprocess.run(['git', *a], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ID}).stdout

def bare(base, name, files=None, src=None) -> Path:
    "A bare repository `base/name.git` of folder `src`, or of `files` (path -> text; text starting with #! is executable)"
    w = Path(base)/'work'/name
    if src: shutil.copytree(src, w, symlinks=True)
    for f, t in (files or {}).items():
        (w/f).parent.mkdir(parents=True, exist_ok=True); (w/f).write_text(t)
        if t.startswith('#!'): (w/f).chmod(0o755)
    git('init', '-q', '-b', 'main', cwd=w); git('add', '-A', cwd=w); git('commit', '-qm', name, cwd=w)
    b = Path(base)/f'{name}.git'
    git('clone', '-q', '--bare', str(w), str(b), cwd=base)
    return b

@pytest.fixture
def box(tmp_path, monkeypatch):
    "One machine: a home, a storage, its own run folder (PERSISTLAB_RUN, set by conftest)"
    home, st = tmp_path/'home', tmp_path/'storage'; home.mkdir(); st.mkdir()
    monkeypatch.setenv('HOME', str(home)); monkeypatch.setenv('PERSISTLAB_PLATFORM', 'local'); monkeypatch.setenv('PERSISTLAB_STORAGE', str(st))
    return tmp_path, home, st

def apply(url, **kw): return apply_dotfiles(url, progress=False, **kw)

def test_the_first_script_in_codespaces_order_runs(box):
    base, home, st = box
    for i, name in enumerate(SCRIPTS):
        # this script and every later one: each says its name; only the first may run
        files = {s: f'#!/bin/sh\necho {s} >> "$HOME/ran"; pwd > "$HOME/cwd"\n' for s in SCRIPTS[i:]}
        (home/'ran').unlink(missing_ok=True)
        r = apply(f'file://{bare(base, f"r{i}", files)}', force=True)
        assert r.script == name and r.code == 0 and r.ok, r
        assert (home/'ran').read_text() == f'{name}\n', (name, r)
        assert (home/'cwd').read_text().strip() == str(home/'.dotfiles')  # run from the clone, as Codespaces does
    # not executable in the repository, and no #! line: made executable and run, as dev containers do
    r = apply('file://' + str(bare(base, 'plain', {'setup.sh': 'echo plain > "$HOME/ran"\n'})), force=True)
    assert (home/'ran').read_text() == 'plain\n' and [x.what for x in r if x.path == 'setup.sh'] == ['made executable', 'ran'], r

def test_no_script_links_dot_files_and_backs_up_what_was_there(box):
    base, home, st = box
    from persistlab.persist import persist
    (home/'.gitconfig').write_text('[user]\n  name = kept by persistlab\n'); persist('.gitconfig', home=home)
    (home/'.bashrc').write_text('the image bashrc\n'); (home/'.config').mkdir(); (home/'.config/app').write_text('x')
    url = 'file://' + str(bare(base, 'links', {'.vimrc': 'set nu\n', '.bashrc': 'mine\n', '.gitconfig': '[user]\n', '.config/tool': 'y',
                                               '.ssh/config': 'Host x\n', 'README.md': 'hi\n'}))
    r = apply(url)
    what = {x.path: x.what for x in r}
    assert r.script is None and r.ok
    assert (home/'.vimrc').resolve() == home/'.dotfiles/.vimrc' and (home/'.bashrc').read_text() == 'mine\n'
    assert [p.read_text() for p in (st/'.persistlab-backup').glob('*/.bashrc')] == ['the image bashrc\n']  # not lost
    assert what['.config'] == 'skipped' and (home/'.config/app').read_text() == 'x'  # a folder here is kept as it is
    assert what['.ssh'] == 'skipped' and not (home/'.ssh').exists()
    assert what['.gitconfig'] == 'skipped' and (home/'.gitconfig').resolve() == st/'.gitconfig'  # storage's stays
    assert not (home/'README.md').exists() and what['storage'] == 'remembered'
    assert recorded_dotfiles(st) == url
    assert apply(url)[0].what == 'already applied'  # once per machine
    again = apply(url, force=True)
    assert {x.path: x.what for x in again}['.vimrc'] == 'linked' and not list((st/'.persistlab-backup').glob('*/.vimrc'))

def test_a_failing_script_is_said_with_its_code_and_log_and_the_rest_goes_on(box):
    base, home, st = box
    url = 'file://' + str(bare(base, 'fails', {'install.sh': '#!/bin/sh\necho half done\necho broken >&2\nexit 7\n', '.vimrc': 'x'}))
    r = apply(url)
    assert r.code == 7 and not r.ok and r.log == home/'.persistlab/dotfiles.log'
    row = next(x for x in r if x.path == 'install.sh')
    assert row.what == 'failed' and 'exit 7' in row.detail and str(r.log) in row.detail and 'went on' in row.detail
    assert 'half done' in r.log.read_text() and 'broken' in r.log.read_text()
    assert recorded_dotfiles(st) == url and 'failed' in repr(r) and 'exit 7' in r._repr_markdown_()
    assert apply(url)[0].what == 'already applied'  # it ran on this machine: not again at every kernel start
    from persistlab.doctor import doctor
    assert 'its script failed (install.sh, exit 7)' in D.status_rows(st)[0][1]
    assert f'dotfiles {url}: applied here, its script failed' in repr(doctor())  # the report to paste says so, with the fix

def test_a_script_that_hangs_is_stopped(box, monkeypatch):
    "A script waiting on something forever (a prompt with a terminal, a server) does not hold a machine's start: stopped, said"
    base, home, st = box
    monkeypatch.setenv('PERSISTLAB_DOTFILES_TIMEOUT', '1')
    r = apply('file://' + str(bare(base, 'hangs', {'install.sh': '#!/bin/sh\necho waiting\nsleep 60\n'})))
    assert r.code == 'timeout' and not r.ok and 'stopped after 1s' in next(x.detail for x in r if x.path == 'install.sh'), r
    assert 'persistlab: stopped after 1s' in r.log.read_text()

def test_names_are_checked_before_anything_runs(box):
    base, home, st = box
    for bad in ('-uhttps://x/y', 'ext::sh -c touch% /tmp/pwned', 'http://example.org/me/dot.git', 'git://example.org/d.git',
                'https://me:ghp_x@github.com/me/dot.git', 'git@host:-oProxyCommand=x', 'me/../../etc', 'dotfiles', 'a b/c'):
        with pytest.raises(DotfilesError, match='valid forms: OWNER/REPO'): apply(bad)
    assert not any(home.iterdir()) and not any(st.iterdir())  # no clone, no log, nothing remembered
    assert parse_repo('holman/dotfiles') == 'https://github.com/holman/dotfiles.git'

def test_a_failed_clone_leaves_what_was_there(box):
    base, home, st = box
    (home/'.dotfiles').mkdir(); (home/'.dotfiles/notes').write_text('mine')
    with pytest.raises(DotfilesError, match=r'cloning file://.* failed \(exit 128\): fatal: .*dotfiles.log'):
        apply(f'file://{base}/nothere.git')
    assert (home/'.dotfiles/notes').read_text() == 'mine' and recorded_dotfiles(st) is None
    url = 'file://' + str(bare(base, 'ok', {'.vimrc': 'x'}))
    r = apply(url)  # a folder that is not this clone goes to the backup folder, then the clone takes its place
    assert [p.read_text() for p in (st/'.persistlab-backup').glob('*/.dotfiles/notes')] == ['mine'] and r[0].what == 'backed up'

def test_storage_that_is_not_there_is_said_and_not_made(box, monkeypatch):
    "Colab before Drive is mounted: the dotfiles are applied here, and the result says they are not remembered, and why"
    base, home, st = box
    monkeypatch.setenv('PERSISTLAB_STORAGE', str(base/'drive/MyDrive/persistlab'))
    r = apply('file://' + str(bare(base, 'd', {'.vimrc': 'x', '.bashrc': 'y'})))
    assert (home/'.vimrc').resolve() == home/'.dotfiles/.vimrc' and not (base/'drive').exists()
    row = next(x for x in r if x.path == 'storage')
    assert row.what == 'not remembered' and 'mount Google Drive first' in row.detail, r

def test_the_console_script(box):
    "persistlab-persist --dotfiles REPO: the same engine from a shell; a bad name is one line on stderr and exit 1"
    import sys
    base, home, st = box
    f = base/'persist_cli.py'; f.write_text('import sys\nfrom persistlab.cli import persist_cli\nsys.exit(persist_cli())\n')  # as its entry point
    run = lambda *a: subprocess.run([sys.executable, f, *a], capture_output=True, text=True, timeout=120)
    r = run('--dotfiles', 'file://' + str(bare(base, 'c', {'bootstrap': '#!/bin/sh\necho boot > "$HOME/b"\n'})))
    assert r.returncode == 0 and 'bootstrap  ran: exit 0' in r.stdout and (home/'b').read_text() == 'boot\n', r.stdout + r.stderr
    r = run('--dotfiles', 'ext::sh -c id')
    assert r.returncode == 1 and r.stderr.startswith('persistlab: --dotfiles') and 'valid forms' in r.stderr and r.stdout == '', r

# --- two machines, one storage: replicas ---

needs_root = pytest.mark.skipif(not IS_ROOT, reason='replicas need root (mount namespaces)')

def holman_fork(base) -> Path:
    "holman's dotfiles as a user forks them: the git author that script/bootstrap asks for, committed"
    w = base/'fork'; shutil.copytree(HOLMAN, w)
    ex = (HOLMAN/'git/gitconfig.local.symlink.example').read_text()
    (w/'git/gitconfig.local.symlink').write_text(ex.replace('AUTHORNAME', 'Ada Fork').replace('AUTHOREMAIL', 'ada@example.org')
                                                   .replace('GIT_CREDENTIAL_HELPER', 'cache'))
    git('init', '-q', '-b', 'main', cwd=w); git('add', '-Af', cwd=w); git('commit', '-qm', 'my fork', cwd=w)
    git('clone', '-q', '--bare', str(w), str(base/'fork.git'), cwd=base)
    return base/'fork.git'

@needs_root
def test_paperspace_two_machines_holman_dotfiles_at_boot(replica, tmp_path):
    up, fork = bare(tmp_path, 'holman', src=HOLMAN), holman_fork(tmp_path)
    vm = replica('paperspace')
    r1, r2, r = vm.run(['%load_ext persistlab', f'%persist --dotfiles file://{up}',
                        f'%persist --dotfiles file://{fork}'])  # then the user's fork, with the author committed
    assert r2.ok, r2
    # holman's script asks for a git author with `read -e` under `set -e`: no terminal, so it stops there, and says so
    assert 'script/bootstrap  failed: exit 1' in r2.out and '/root/.persistlab/dotfiles.log' in r2.out, r2.out
    assert 'What is your github author name?' in vm.p('/root/.persistlab/dotfiles.log').read_text()  # the log keeps each run
    assert r.ok and 'script/bootstrap  ran: exit 0' in r.out, r.out
    assert vm.sh('git config user.name').stdout.strip() == 'Ada Fork'  # ~/.gitconfig -> the clone, including ~/.gitconfig.local
    assert json.loads((vm.storage/'cfg/persistlab.json').read_text())['dotfiles']['repo'] == f'file://{fork}'
    assert '# >>> persistlab >>>' in (vm.storage/'pre-run.sh').read_text()  # the startup hook runs the restore script

    vm2 = replica('paperspace')  # the next machine: the image's start runs pre-run.sh, before any kernel
    assert 'All installed!' in vm2.p('/root/.persistlab/dotfiles.log').read_text(), (vm2.boot.stdout, vm2.boot.stderr)
    assert vm2.sh('git config user.name').stdout.strip() == 'Ada Fork'
    for f in ('.gitconfig', '.vimrc', '.zshrc', '.gitconfig.local'):
        assert os.readlink(vm2.p(f'/root/{f}')).startswith('/root/.dotfiles/'), f
    before = vm2.p('/root/.persistlab/dotfiles.log').stat().st_mtime_ns
    r = vm2.run_cell('%load_ext persistlab\n%persist --list')
    assert r.ok and 'dotfiles  applied here' in r.out.replace('  ', '  '), r.out
    assert vm2.p('/root/.persistlab/dotfiles.log').stat().st_mtime_ns == before  # not run again by the kernel

@needs_root
def test_load_ext_applies_it_once_per_machine(replica, tmp_path):
    "A box with no startup hook: the next machine's %load_ext applies it, once"
    count = tmp_path/'runs'
    repo = bare(tmp_path, 'counted', {'install.sh': f'#!/bin/sh\necho "$HOME" >> {count}\ntouch "$HOME/.i-was-here"\n'})
    env = dict(PERSISTLAB_STORAGE=tmp_path/'keep')
    vm = replica('vm', env=env)
    r = vm.run_cell(f'%load_ext persistlab\n%persist --dotfiles file://{repo}')
    assert r.ok and 'install.sh  ran: exit 0' in r.out, r.out
    r = vm.run_cell(f'%load_ext persistlab\n%persist --dotfiles file://{repo}')  # a kernel restart, the same line again
    assert r.ok and 'already applied' in r.out and count.read_text() == '/root\n', r.out
    vm2 = replica('vm', env=env)  # a new box: empty home, the same storage
    r = vm2.run_cell('%load_ext persistlab')
    assert r.ok and 'install.sh  ran: exit 0' in r.out and vm2.p('/root/.i-was-here').exists(), r.out
    r, bad, off, listed = vm2.run(['%load_ext persistlab', "%persist --dotfiles 'ext::sh -c id'", '%persist --dotfiles off', '%persist --list'])
    assert r.ok and 'dotfiles' not in r.out and count.read_text() == '/root\n' * 2, r.out
    assert off.ok and 'dotfiles  forgotten' in off.out and 'dotfiles' not in listed.out, (off, listed)
    assert 'dotfiles' not in json.loads((tmp_path/'keep/persistlab.json').read_text())  # the next box gets none
    assert bad.error.startswith('UsageError') and 'valid forms: OWNER/REPO' in bad.error, bad

@needs_root
def test_a_private_repository_over_ssh_with_the_key_sshsetup_made(replica, tmp_path):
    "A rented box: the key %sshsetup made clones over ssh; the next box's start command (the restore script) brings the key back, then the clone"
    repo = holman_fork(tmp_path)
    env = dict(PERSISTLAB_STORAGE=tmp_path/'keep')
    vm = replica('vm', env=env)
    assert (r := vm.run_cell('%load_ext persistlab\n%sshsetup --no-check')).ok, r
    p, port, hostkey, _ = start_sshd(tmp_path/'sshd', None, authorized=vm.p('/root/.ssh/id_ed25519.pub').read_text())
    try:
        with open(vm.p('/root/.ssh/known_hosts'), 'a') as f: f.write(f'[127.0.0.1]:{port} {hostkey}')
        url = f'ssh://{getpass.getuser()}@127.0.0.1:{port}{repo}'
        r = vm.run_cell(f'%load_ext persistlab\n%persist .ssh\n%persist --dotfiles {url}')
        assert r.ok and 'script/bootstrap  ran: exit 0' in r.out and '.dotfiles         cloned: from ssh://' in r.out, r.out
        vm2 = replica('vm', env=env)
        boot = vm2.sh(f'sh {tmp_path}/keep/persistlab-restore.sh')  # the line a RunPod or vast.ai start command gets
        assert vm2.sh('git config user.name').stdout.strip() == 'Ada Fork', (boot.stdout, boot.stderr)
        assert 'All installed!' in vm2.p('/root/.persistlab/dotfiles.log').read_text()
    finally:
        p.terminate(); p.wait(10)
