"The safety core, tried the way a careless or hostile user would: each case here lost data or left a self-link before"
import os, json, stat, subprocess, sys
from pathlib import Path
import pytest
from conftest import snapshot, make_tree, IS_ROOT
from persistlab.platforms import detect
from persistlab.core import PersistlabError, loops
from persistlab.persist import persist, restore, status, undo, PersistError
from persistlab.storage import MANIFEST, SCRIPT, BACKUP, TMP, HOME_TMP, read_manifest, BEGIN, END

def plat(sb, hook=None, storage=True):
    env = dict(HOME=str(sb.home), PERSISTLAB_PLATFORM='paperspace' if hook else 'local')
    if storage: env['PERSISTLAB_STORAGE'] = str(sb.storage)
    if hook: env['PERSISTLAB_HOOK'] = str(hook)
    return detect(env=env)

def cli(sb, name, *args, check=True, **env):
    "Run console script `name` (persist_cli, restore_cli, status_cli) as its entry point does, from this checkout"
    f = sb.base/f'{name}.py'; f.write_text(f'import sys\nfrom persistlab.cli import {name}\nsys.exit({name}())\n')
    return sb.run(sys.executable, f, *args, check=check, **env)

def go(sb, paths, **kw): return persist(paths, home=sb.home, platform=plat(sb, kw.pop('hook', None)), **kw)

def no_self_links(*roots):
    for r in roots:
        for root, dirs, files in os.walk(r):
            for n in dirs + files:
                p = Path(root)/n
                if p.is_symlink():
                    assert not loops(p), f'{p} -> {os.readlink(p)} loops'
                    assert Path(os.path.realpath(p)) != Path(os.path.realpath(p.parent))/p.name

def jupyter_files(sb):
    d = sb.home/'.local/share/jupyter'; d.mkdir(parents=True)
    (d/'nbconfig').mkdir(); (d/'nbconfig/notebook.json').write_text('{"x": 1}'); (d/'kernels.txt').write_text('mine')
    return snapshot(d)

def test_sub_path_then_parent_then_anything_loses_nothing(sb):
    want = jupyter_files(sb); (sb.home/'.local/bin').mkdir(); (sb.home/'.local/bin/tool').write_text('t')
    (sb.home/'.ssh').mkdir(); (sb.home/'.ssh/id').write_text('k')
    go(sb, '.local/share/jupyter')
    with pytest.raises(PersistError, match=r'overlaps ~/\.local/share/jupyter.*--undo \.local/share/jupyter'): go(sb, '.local')
    go(sb, '.ssh')
    assert snapshot((sb.home/'.local/share/jupyter').resolve()) == want and (sb.home/'.local/bin/tool').read_text() == 't'
    assert [r.what for r in status(home=sb.home, platform=plat(sb))] == ['linked', 'copied']
    no_self_links(sb.home, sb.storage)
    # what the message says to do works: undo the inner one, then persist the parent
    undo('.local/share/jupyter', home=sb.home, platform=plat(sb)); go(sb, '.local')
    assert snapshot((sb.home/'.local/share/jupyter').resolve()) == want and (sb.home/'.local').is_symlink()
    no_self_links(sb.home, sb.storage)

def test_parent_then_sub_path_is_refused_and_nothing_moves(sb):
    want = jupyter_files(sb)
    go(sb, '.local')
    with pytest.raises(PersistError, match=r'overlaps ~/\.local,'): go(sb, '.local/share/jupyter')
    assert snapshot((sb.home/'.local/share/jupyter').resolve()) == want and not (sb.storage/BACKUP).exists()
    assert [r.what for r in status(home=sb.home, platform=plat(sb))] == ['linked']
    no_self_links(sb.home, sb.storage)

def test_overlapping_paths_in_one_call_are_refused(sb):
    jupyter_files(sb)
    with pytest.raises(PersistError, match='overlap'): go(sb, ['.local', '.local/share'])
    assert not (sb.home/'.local').is_symlink()

@pytest.mark.parametrize('bad', ['/abs/dir', '../x', '.', 'a/../b', '~/.local'])
def test_manifest_entry_outside_home_is_reported_and_never_acted_on(sb, bad):
    victim = sb.base/'victim'; victim.mkdir(); (victim/'data').write_text('keep me')
    target = victim if bad == '/abs/dir' else sb.home/bad
    entry = str(victim) if bad == '/abs/dir' else bad
    (sb.home/'.local').mkdir(); go(sb, '.local')
    m = read_manifest(sb.storage); m['entries'].append(dict(path=entry, strategy='link', kind='dir')); (sb.storage/MANIFEST).write_text(json.dumps(m))
    before = snapshot(sb.base/'victim')
    r = cli(sb, 'restore_cli')
    assert 'skipped' in r.stdout and entry in r.stdout
    assert snapshot(sb.base/'victim') == before and (victim/'data').read_text() == 'keep me' and not victim.is_symlink()
    assert f"'{entry}' ||" not in (sb.storage/SCRIPT).read_text()
    assert any(x.path == entry and x.what == 'skipped' for x in status(home=sb.home, platform=plat(sb)))

@pytest.mark.parametrize('where', ['storage', 'home'])
@pytest.mark.parametrize('op', ['persist', 'restore', 'undo'])
def test_planted_temp_dir_link_is_never_emptied(sb, where, op):
    (sb.home/'.local').mkdir(); (sb.home/'.local/f').write_text('1'); go(sb, '.local')
    victim = sb.base/'victim'; victim.mkdir(); (victim/'important').write_text('keep')
    t = sb.storage/TMP if where == 'storage' else sb.home/HOME_TMP
    t.parent.mkdir(parents=True, exist_ok=True)
    if t.is_dir(): t.rmdir()
    os.symlink(victim, t)
    f = dict(persist=lambda: go(sb, '.local'), restore=lambda: restore(home=sb.home, platform=plat(sb)),
             undo=lambda: undo('.local', home=sb.home, platform=plat(sb)))[op]
    with pytest.raises(PersistError, match='is a symlink'): f()
    assert (victim/'important').read_text() == 'keep'

def test_storage_may_not_be_home_or_inside_a_persisted_path(sb):
    (sb.home/'.local').mkdir()
    with pytest.raises(PersistError, match='is your home'): persist('.local', to=sb.home, home=sb.home, platform=plat(sb, storage=False))
    with pytest.raises(PersistError, match=r'inside ~/\.local'):
        persist('.local', to=sb.home/'.local/x/../keep', home=sb.home, platform=plat(sb, storage=False))
    assert (sb.home/'.local').is_dir() and not (sb.home/'.local').is_symlink()

def test_relative_to_is_refused_with_the_absolute_one_which_is_then_remembered(sb):
    (sb.home/'.local').mkdir(); (sb.home/'.local/f').write_text('1')
    code = "from persistlab.persist import persist; print(persist(['.local'], to=%r))"
    r = subprocess.run([sys.executable, '-c', code % 'keep'], env=sb.env(PERSISTLAB_STORAGE=''), cwd=sb.base, capture_output=True, text=True)
    assert r.returncode == 1 and f'did you mean --to {sb.base}/keep?' in r.stderr, r.stderr
    assert not (sb.base/'keep').exists() and not (sb.home/'.persistlab/storage').exists() and not (sb.home/'.local').is_symlink()
    r = subprocess.run([sys.executable, '-c', code % str(sb.base/'keep')], env=sb.env(PERSISTLAB_STORAGE=''), cwd=sb.base,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    link = os.readlink(sb.home/'.local')
    assert link == str(sb.base/'keep/.local') and (Path(link)/'f').read_text() == '1', (link, r.stdout)
    # later calls without --to find it
    env = dict(PERSISTLAB_STORAGE='')
    assert 'linked' in sb.py("from persistlab.persist import status; print(status())", **env).stdout
    assert 'already linked' in sb.py("from persistlab.persist import restore; print(restore())", **env).stdout
    sb.py("from persistlab.persist import undo; print(undo('.local'))", **env)
    assert (sb.home/'.local/f').read_text() == '1' and not (sb.home/'.local').is_symlink()

def test_failed_cross_fs_persist_leaves_no_lost_entry(sb, tmpfs):
    full = tmpfs('full', '1m'); make_tree(sb.home/'.local', 5, big=2)
    pl = detect(env=dict(HOME=str(sb.home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(full)))
    with pytest.raises(PersistError, match='space|full'): persist('.local', home=sb.home, platform=pl)
    assert read_manifest(full)['entries'] == [] and not any('lost' in r.what for r in status(home=sb.home, platform=pl))
    assert (sb.home/'.local').is_dir() and not (sb.home/'.local').is_symlink()

def test_force_on_a_link_elsewhere_never_ends_with_the_path_gone(sb):
    elsewhere = sb.base/'elsewhere'; elsewhere.mkdir(); (elsewhere/'x').write_text('1')
    os.symlink(elsewhere, sb.home/'.cache')
    with pytest.raises(PersistError, match='would leave nothing'): go(sb, '.cache', force=True)
    assert os.readlink(sb.home/'.cache') == str(elsewhere) and (elsewhere/'x').read_text() == '1'

def test_hook_without_end_marker_keeps_the_users_lines(sb):
    hook = sb.base/'pre-run.sh'
    hook.write_text(f'#!/usr/bin/env bash\ncd\n{BEGIN}\n# added by persistlab: re-creates persisted paths\necho my own line\nexport MINE=1\n')
    (sb.home/'.local').mkdir(); go(sb, '.local', hook=hook)
    t = hook.read_text()
    assert 'echo my own line\nexport MINE=1\n' in t and t.count(BEGIN) == 1 and t.count(END) == 1
    go(sb, '.local', hook=hook); assert hook.read_text() == t

def test_symlinked_hook_stays_a_symlink(sb):
    real = sb.base/'dotfiles/pre-run.sh'; real.parent.mkdir(); real.write_text('#!/bin/bash\necho mine\n')
    hook = sb.base/'pre-run.sh'; os.symlink(real, hook)
    (sb.home/'.local').mkdir(); go(sb, '.local', hook=hook)
    assert hook.is_symlink() and os.readlink(hook) == str(real) and BEGIN in real.read_text() and 'echo mine' in real.read_text()

def test_hook_on_a_read_only_filesystem_is_one_line(sb, tmpfs):
    ro = tmpfs('ro', '1m'); hook = ro/'pre-run.sh'; hook.write_text('#!/bin/bash\n')
    subprocess.run(['mount', '-o', 'remount,ro', str(ro)], check=True)
    (sb.home/'.local').mkdir()
    r = go(sb, '.local', hook=hook)
    (row,) = [x for x in r if x.path == 'startup hook']
    assert row.what == 'not written' and 'persistlab-restore.sh' in row.detail and (sb.home/'.local').is_symlink()
    c = cli(sb, 'persist_cli', '.local', PERSISTLAB_PLATFORM='paperspace', PERSISTLAB_HOOK=hook, check=False)
    assert 'Traceback' not in c.stderr

@pytest.mark.parametrize('bad', ['[]', '{}', '{"entries": 5}', '{"version": 1, "entries": 5}', '{"version": 1, "entries": [{"strategy": "link"}]}',
                                 '{"version": 1, "entries": [{"path": ".x"}]}', '{"version": 1, "entries": [{"path": ".x", "strategy": "archive"}]}', 'not json'])
def test_manifest_of_the_wrong_shape_is_one_line_and_changes_nothing(sb, bad):
    (sb.home/'.local').mkdir(); (sb.home/'.local/f').write_text('1')
    (sb.storage/MANIFEST).write_text(bad); before = snapshot(sb.base)
    for f in (lambda: go(sb, '.local'), lambda: restore(home=sb.home, platform=plat(sb)),
              lambda: status(home=sb.home, platform=plat(sb)), lambda: undo('.local', home=sb.home, platform=plat(sb))):
        with pytest.raises(PersistError, match=str(sb.storage/MANIFEST)): f()
    assert snapshot(sb.base) == before
    for name in ('persist_cli', 'restore_cli', 'status_cli'):
        r = cli(sb, name, *(['.local'] if name == 'persist_cli' else []), check=False)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and str(sb.storage/MANIFEST) in r.stderr, r.stderr

def test_persist_through_a_symlinked_folder_is_refused(sb):
    outside = sb.base/'outside'; (outside/'sub').mkdir(parents=True); (outside/'sub/data').write_text('not yours')
    os.symlink(outside, sb.home/'lnk')
    with pytest.raises(PersistError, match='does not act through links'): go(sb, 'lnk/sub')
    assert (outside/'sub/data').read_text() == 'not yours' and not (outside/'sub').is_symlink()

def test_restore_script_never_moves_into_an_existing_backup_entry(sb):
    (sb.home/'.ssh').mkdir(); (sb.home/'.ssh/id').write_text('k'); go(sb, '.ssh')
    # a backup folder "from the same second" already holding a link named like the entry
    fakebin = sb.base/'bin'; fakebin.mkdir(); (fakebin/'date').write_text('#!/bin/sh\necho 20260101T000000Z\n'); os.chmod(fakebin/'date', 0o755)
    old = sb.storage/BACKUP/'20260101T000000Z'; old.mkdir(parents=True); os.symlink(sb.storage/'.ssh', old/'.ssh')
    fresh = sb.base/'fresh'; (fresh/'.ssh').mkdir(parents=True); (fresh/'.ssh/authorized_keys').write_text('image key')
    r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH=f'{fakebin}:/usr/bin:/bin'), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (sb.storage/'.ssh/.ssh').exists() and os.readlink(old/'.ssh') == str(sb.storage/'.ssh')
    assert [p.read_text() for p in (sb.storage/BACKUP).glob('*/.ssh/authorized_keys')] == ['image key']
    assert (fresh/'.ssh/id').read_text() == 'k'

def test_backup_folders_are_unique_per_run(sb):
    (sb.storage/'.cfg').mkdir(); (sb.storage/'.cfg/a').write_text('storage')
    for i in range(3):  # three runs in the same second, each with home data in the way
        if (sb.home/'.cfg').is_symlink(): (sb.home/'.cfg').unlink()
        (sb.home/'.cfg').mkdir(); (sb.home/'.cfg/a').write_text(f'home {i}')
        go(sb, '.cfg')
    assert sorted(p.read_text() for p in (sb.storage/BACKUP).glob('*/.cfg/a')) == ['home 0', 'home 1', 'home 2']

def test_front_ends_catch_only_persistlabs_errors(sb):
    "A bug (a ValueError) must show its traceback; persistlab's own errors are one line"
    code = '''
import persistlab.persist as P
from IPython.testing.globalipapp import start_ipython
ip = start_ipython(); ip.run_line_magic('load_ext', 'persistlab')
def boom(*a, **k): raise ValueError('a bug')
P.status = boom
r = ip.run_cell('%persist --list')
print('ERR', type(r.error_in_exec).__name__)
r = ip.run_cell('%persist .local --to /proc/nope/x')
print('ERR2', type(r.error_in_exec).__name__)
'''
    r = sb.py(code, check=False)
    assert 'ERR ValueError' in r.stdout and 'Traceback' in r.stdout + r.stderr, r.stdout + r.stderr
    assert 'ERR2 UsageError' in r.stdout, r.stdout + r.stderr
