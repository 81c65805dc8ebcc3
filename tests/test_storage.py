"Which storage is in use: resolved once, shown, switched only on request, and a refused command leaves nothing behind"
import os, re, sys, shutil
from pathlib import Path
import pytest
from conftest import make_tree
from test_ipython import ipython
from persistlab.platforms import detect
from persistlab.core import Report

def cli(sb, name, *args, **kw):
    "Console script `name` (restore_cli, packages_cli...) as its entry point runs it, against this checkout"
    f = sb.base/f'{name}.py'; f.write_text(f'import sys\nfrom persistlab.cli import {name}\nsys.exit({name}())\n')
    return sb.run(sys.executable, f, *args, check=False, **kw)

NOENV = dict(PERSISTLAB_STORAGE='')  # storage as a user's session finds it: --to, then the remembered one

def test_another_to_does_not_switch_silently(sb):
    "`--to keep2` while keep1 (remembered) keeps .local: refused, saying what keep1 keeps and how to switch; --switch does"
    keep1, keep2 = sb.base/'keep1', sb.base/'keep2'; keep1.mkdir()
    make_tree(sb.home/'.local', 5); (sb.home/'.config').mkdir(); (sb.home/'.config/app.toml').write_text('x')
    r = ipython(sb, f'''
        %load_ext persistlab
        %persist .local --to {keep1}
        %persist .config --to {keep2}
        r = %persist --list
        print('LIST', r.title, [x.path for x in r])
        r = %persist .config --to {keep2} --switch
        print('SWITCHED', r.title)
        r = %persist --list
        print('LIST', r.title, [x.path for x in r])
        ''', **NOENV)
    out = r.stdout + r.stderr
    refused = [l for l in out.splitlines() if 'would switch' in l]
    assert len(refused) == 1 and f'storage in use is {keep1} (remembered), which keeps .local' in refused[0], out
    assert '--switch' in refused[0] and f'--undo PATH --to {keep1}' in refused[0] and 'Traceback' not in out, out
    assert f"LIST local: persisted in {keep1} (remembered) ['.local']" in out, out
    assert f'SWITCHED persisted into {keep2} (--to)' in out and f"persisted in {keep2} (remembered) ['.config']" in out, out
    assert (sb.home/'.persistlab/storage').read_text().strip() == str(keep2)
    assert os.readlink(sb.home/'.local') == str(keep1/'.local')  # what keep1 keeps stays there, still linked

def test_restore_to_is_remembered_and_sshd_keeps_its_host_key_there(sb):
    "A fresh box: `%persist --restore --to X`, then sshd (no --to) keeps its host key in X, so the fingerprint stays"
    if not shutil.which('sshd') and not Path('/usr/sbin/sshd').exists(): pytest.fail('needs OpenSSH sshd (.ci/run installs it)')
    x = sb.base/'x'; x.mkdir(); (sb.home/'.bashrc').write_text('# mine\n')
    sb.py(f"from persistlab.persist import persist; persist(['.bashrc'], to={str(x)!r})", **NOENV)
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = ipython(sb, f'''
        %load_ext persistlab
        r = %persist --restore --to {x}
        print('TITLE', r.title)
        from persistlab import ssh, procs
        s = ssh.start_server(procs.free_port(), keys='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDVcxa7zIbmsG3Kw0CrGL1t3Ns8FWHdZxLtHpHYKk3eX t', listen='127.0.0.1', install=False, strict_modes=False); print('HOSTKEY', dict((x[0], x[2]) for x in s)['host key'])
        %unload_ext persistlab
        ''', home=fresh, PERSISTLAB_RUNTIME=sb.base/'run', PERSISTLAB_SSHD=shutil.which('sshd') or '/usr/sbin/sshd', **NOENV)
    out = r.stdout + r.stderr
    assert f'TITLE restored from {x} (--to)' in out and os.readlink(fresh/'.bashrc') == str(x/'.bashrc'), out
    assert (fresh/'.persistlab/storage').read_text().strip() == str(x)
    assert f'HOSTKEY {x}/sshd' in out and (x/'sshd/ssh_host_ed25519_key').is_file(), out
    assert 'stopped sshd' in out

def test_refused_commands_create_and_remember_nothing(sb):
    "An overlap, a refused path, a relative or in-home --to, an empty --to: one line each; no folder made, nothing remembered"
    b = sb.base/'b'
    (sb.home/'.local/share').mkdir(parents=True); os.symlink('/etc', sb.home/'lnk')
    r = ipython(sb, f'''
        %load_ext persistlab
        %persist .local .local/share --to {b}
        %persist lnk --to {b}
        %persist .local --to rel/keep
        %persist .local --to ~/keep
        %persist .local --to ""
        %persist --list --to ""
        ''', **NOENV)
    out = r.stdout + r.stderr
    assert 'overlap' in out and "won't follow or replace it" in out and 'Traceback' not in out, out
    assert '--to rel/keep is a relative path' in out and re.search(r'did you mean --to /\S*/rel/keep\?', out), out
    assert f'storage {sb.home}/keep is inside your home' in out, out
    assert out.count('--to is empty') == 2, out
    assert not b.exists() and not (sb.home/'keep').exists() and not Path('rel').exists(), out
    assert not (sb.home/'.persistlab/storage').exists() and not (sb.home/'.local').is_symlink()
    # `--to ""` with $PERSISTLAB_STORAGE set is an error too, not the default storage
    r = ipython(sb, '%load_ext persistlab\n%persist .local --to ""')
    assert '--to is empty' in r.stdout + r.stderr and not (sb.storage/'persistlab.json').exists()

def test_cli_refusals_create_nothing(sb):
    typo = sb.base/'typo'
    r = cli(sb, 'restore_cli', '--to', typo)
    assert r.returncode == 1 and f'storage {typo} does not exist' in r.stderr and r.stderr.count('\n') == 1, r.stderr
    assert not typo.exists() and not (sb.home/'.persistlab/storage').exists()
    r = cli(sb, 'persist_cli', '.local', '--to', '')
    assert r.returncode == 1 and '--to is empty' in r.stderr and not (sb.storage/'persistlab.json').exists(), r.stderr
    for args, needs in ((['--wheels'], '--wheels goes with --forget'), (['--kernel', 'x'], '--kernel NAME goes with --venv DIR')):
        r = cli(sb, 'packages_cli', *args)
        assert r.returncode == 1 and needs in r.stderr and r.stderr.count('\n') == 1, (args, r.stdout, r.stderr)
    assert list(sb.storage.iterdir()) == []  # no save ran

def test_cli_reports_say_which_storage(sb):
    (sb.home/'.bashrc').write_text('# mine\n')
    r = cli(sb, 'persist_cli', '.bashrc')
    assert r.returncode == 0 and r.stdout.startswith(f'persisted into {sb.storage} (PERSISTLAB_STORAGE):'), r.stdout + r.stderr
    r = cli(sb, 'status_cli')
    assert r.stdout.startswith(f'local: persisted in {sb.storage} (PERSISTLAB_STORAGE):'), r.stdout

def test_form_sets_the_storage_shows_it_and_switches_only_when_asked(tmp_path):
    "No storage configured: the form says how to set one (no `--to` a form user cannot pass), sets it, persists into it"
    from persistlab.forms import Setup
    home = tmp_path/'home'; (home/'.local').mkdir(parents=True); (home/'.local/f').write_text('1')
    p = detect(env=dict(HOME=str(home), PERSISTLAB_PLATFORM='local'))
    f = Setup(p, env={})
    shown = lambda: f.head.value + f.state.value + f.msgs['Persist'].value
    assert 'no storage yet' in f.head.value and 'Use this storage' in f.head.value and 'PERSISTLAB_STORAGE' not in shown(), shown()
    f.persist_btn.click(); f.wait()
    assert 'no storage yet' in f.msgs['Persist'].value and not (home/'.local').is_symlink()
    f.where.value = 'keep'; f.where_btn.click(); f.wait()
    assert 'is a relative path' in f.msgs['Persist'].value and f.storage is None
    k1 = tmp_path/'k1'; f.where.value = str(k1); f.where_btn.click(); f.wait()
    assert f'storage is now {k1}' in f.msgs['Persist'].value and f'<code>{k1}</code> (link, from the form)' in f.head.value, shown()
    f.persist_btn.click(); f.wait()
    assert os.readlink(home/'.local') == str(k1/'.local'), shown()
    g = Setup(p, env={})  # a later form (a new kernel) finds it
    assert f'<code>{k1}</code> (link, from remembered)' in g.head.value and '<td>linked</td>' in g.state.value, g.head.value
    k2 = tmp_path/'k2'; g.where.value = str(k2); g.where_btn.click(); g.wait()
    assert 'keeps .local' in g.msgs['Persist'].value and g.where_btn.description == 'Switch storage' and g.storage.where == k1
    g.where_btn.click(); g.wait()
    assert g.storage.where == k2 and f'.local stay in {k1}' in g.msgs['Persist'].value, g.msgs['Persist'].value
    assert (home/'.persistlab/storage').read_text().strip() == str(k2)

from test_remote import sftp  # noqa: F401,E402 (a fixture: OpenSSH's sshd with its SFTP subsystem on 127.0.0.1)

def test_a_url_given_once_is_the_storage_in_use(sb, sftp):
    "`--to sftp://...` goes to the remote transport through the same magics, is remembered, and a fresh box restores from it"
    env, url = sftp
    (sb.home/'.bashrc').write_text('# kept remotely\n')
    r = ipython(sb, f'''
        %load_ext persistlab
        r = %persist .bashrc --to {url}
        print('TITLE', r.title)
        r = %persist --list
        print('LIST', r.title, [(x.path, x.what) for x in r])
        ''', **NOENV, **env)
    out = r.stdout + r.stderr
    assert f'TITLE snapshots in {url} (--to)' in out and 'Traceback' not in out, out
    assert f"LIST snapshots in {url} (remembered)" in out and "('.bashrc', 'in sync')" in out, out
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = ipython(sb, f'''
        %load_ext persistlab
        r = %persist --restore --to {url}
        print('TITLE', r.title)
        ''', home=fresh, **NOENV, **env)
    out = r.stdout + r.stderr
    assert f'TITLE restored from {url} (--to)' in out and (fresh/'.bashrc').read_text() == '# kept remotely\n', out
    assert (fresh/'.persistlab/storage').read_text().strip() == url

def test_a_path_asked_for_before_it_exists_is_kept_once_sshsetup_writes_it(sb):
    "Link storage: `%persist .ssh .gitconfig` on a box with neither, then `%sshsetup` makes a key and .gitconfig: both reach storage"
    keep, fresh = sb.base/'keep', sb.base/'fresh'; fresh.mkdir()  # a storage folder this first %persist creates
    r = ipython(sb, '''
        %load_ext persistlab
        %persist .ssh .gitconfig
        %sshsetup --no-check --name "A B" --email a@b.c
        ''', PERSISTLAB_STORAGE=keep, GIT_CONFIG_NOSYSTEM=1)
    out = r.stdout + r.stderr
    assert 'kept once it exists: %sshsetup saves the keys and .gitconfig it writes' in out and 'Traceback' not in out, out
    assert (keep/'.ssh/id_ed25519').is_file() and (keep/'.ssh/id_ed25519.pub').read_bytes() == (sb.home/'.ssh/id_ed25519.pub').read_bytes(), out
    assert not (sb.home/'.ssh').is_symlink() and oct((keep/'.ssh/id_ed25519').stat().st_mode & 0o777) == '0o600'  # .ssh: copied
    assert os.readlink(sb.home/'.gitconfig') == str(keep/'.gitconfig') and 'a@b.c' in (keep/'.gitconfig').read_text(), out
    assert re.search(r'^\.ssh +saved to storage', out, re.M) and re.search(r'^\.gitconfig +saved to storage', out, re.M), out
    r = ipython(sb, '%load_ext persistlab\n%persist --restore', home=fresh, PERSISTLAB_STORAGE=keep)  # the next instance
    out = r.stdout + r.stderr
    assert (fresh/'.ssh/id_ed25519').read_bytes() == (sb.home/'.ssh/id_ed25519').read_bytes(), out
    assert os.readlink(fresh/'.gitconfig') == str(keep/'.gitconfig'), out

def test_to_another_storage_than_the_one_env_or_config_names_is_refused(sb):
    "PERSISTLAB_STORAGE or %config names keep1, which keeps .local: `--to keep2` is refused (nothing there), --switch persists there"
    keep1, keep2 = sb.base/'keep1', sb.base/'keep2'
    make_tree(sb.home/'.local', 5); (sb.home/'.bashrc').write_text('# mine\n'); (sb.home/'.vimrc').write_text('set nu\n')
    r = ipython(sb, f'''
        %load_ext persistlab
        %persist .local
        %persist .bashrc --to {keep2}
        ''', PERSISTLAB_STORAGE=keep1)
    out = r.stdout + r.stderr
    assert f'storage in use is {keep1} (PERSISTLAB_STORAGE), which keeps .local; --to {keep2}' in out and 'Traceback' not in out, out
    assert 'Set PERSISTLAB_STORAGE to' in out and not keep2.exists() and not (sb.home/'.bashrc').is_symlink(), out
    r = ipython(sb, f'''
        %load_ext persistlab
        %config PersistlabMagics.storage = '{keep1}'
        %persist .bashrc --to {keep2}
        %persist .vimrc --to {keep2} --switch
        ''', **NOENV)
    out = r.stdout + r.stderr
    assert f'storage in use is {keep1} (%config), which keeps .local; --to {keep2}' in out and 'Traceback' not in out, out
    assert not (sb.home/'.bashrc').is_symlink() and os.readlink(sb.home/'.vimrc') == str(keep2/'.vimrc'), out
