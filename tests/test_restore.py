"The generated restore script and startup hook, run by real shells in new empty homes"
import os, stat, subprocess, shutil, time
from pathlib import Path
import pytest
from conftest import snapshot, make_tree
from persistlab.platforms import detect
from persistlab.persist import persist, restore, PersistError
from persistlab.storage import SCRIPT, BACKUP

def plat(sb, hook=None):
    env = dict(HOME=str(sb.home), PERSISTLAB_PLATFORM='paperspace' if hook else 'local', PERSISTLAB_STORAGE=str(sb.storage))
    if hook: env['PERSISTLAB_HOOK'] = str(hook)
    return detect(env=env)

@pytest.fixture
def persisted(sb):
    "A home with .local, .ssh and .gitconfig persisted"
    make_tree(sb.home/'.local', 30)
    (sb.home/'.ssh').mkdir(); (sb.home/'.ssh/id_ed25519').write_text('PRIVATE'); (sb.home/'.ssh/id_ed25519.pub').write_text('pub')
    (sb.home/'.gitconfig').write_text('[user]\n\tname = A\n')
    persist(['.local', '.ssh', '.gitconfig'], home=sb.home, platform=plat(sb, sb.base/'pre-run.sh'))
    return sb

def test_script_restores_a_new_empty_home(persisted):
    sb = persisted; fresh = sb.base/'fresh'; fresh.mkdir()
    # a minimal environment: no Python on PATH is needed, only sh and coreutils
    r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.readlink(fresh/'.local') == str(sb.storage/'.local') and (fresh/'.gitconfig').read_text() == '[user]\n\tname = A\n'
    assert (fresh/'.ssh/id_ed25519').read_text() == 'PRIVATE' and not (fresh/'.ssh').is_symlink()
    m = lambda p: stat.S_IMODE(p.stat().st_mode)
    assert (m(fresh/'.ssh'), m(fresh/'.ssh/id_ed25519'), m(fresh/'.ssh/id_ed25519.pub')) == (0o700, 0o600, 0o644)
    # Jupyter's runtime dir is a plain folder: a Jupyter started without persistlab's hook still finds a directory
    rt = fresh/'.local/share/jupyter/runtime'
    assert rt.is_dir() and not (sb.storage/'.local/share/jupyter/runtime').is_symlink()
    # idempotent: a second run changes nothing and says so
    before = snapshot(fresh)
    r2 = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert r2.returncode == 0 and snapshot(fresh) == before
    assert 'already linked' in r2.stdout and 'in sync' in r2.stdout and not (sb.storage/BACKUP).exists()
    # the box knows its storage now: `persistlab-status` (and `%persist --list`, the watch) need no --to
    assert (fresh/'.persistlab/storage').read_text() == f'{sb.storage}\n'
    from persistlab.persist import status
    assert sorted(x[0] for x in status(home=fresh, platform=detect(env=dict(HOME=str(fresh), PERSISTLAB_PLATFORM='local'))))[:3] == ['.gitconfig', '.local', '.ssh']

def test_script_backs_up_what_is_in_the_way(persisted):
    sb = persisted; fresh = sb.base/'fresh'
    (fresh/'.local/bin').mkdir(parents=True); (fresh/'.local/bin/image-tool').write_text('from the image')
    (fresh/'.ssh').mkdir(); (fresh/'.ssh/authorized_keys').write_text('image key')
    (fresh/'.gitconfig').write_text('image')
    (fresh/'.config').mkdir()  # not persisted: untouched
    r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (b,) = (sb.storage/BACKUP).iterdir()
    assert (b/'.local/bin/image-tool').read_text() == 'from the image'
    assert (b/'.ssh/authorized_keys').read_text() == 'image key' and (b/'.gitconfig').read_text() == 'image'
    assert (fresh/'.local').is_symlink() and (fresh/'.config').is_dir()

def test_empty_dirs_in_the_way_are_not_backed_up(persisted):
    sb = persisted; fresh = sb.base/'fresh'; (fresh/'.local').mkdir(parents=True)
    r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert r.returncode == 0 and (fresh/'.local').is_symlink() and not (sb.storage/BACKUP).exists()

def test_missing_storage_entry_is_skipped_not_fatal(persisted):
    sb = persisted; shutil.rmtree(sb.storage/'.ssh'); fresh = sb.base/'fresh'; fresh.mkdir()
    r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert r.returncode == 0 and '.ssh: not in storage, skipped' in r.stdout and (fresh/'.local').is_symlink()

@pytest.mark.parametrize('shell', ['sh', 'bash'])
def test_hook_is_safe_to_source(persisted, shell):
    "pre-run.sh is *sourced* by the image's run.sh: the block must not exit, set -e or leave the directory changed"
    sb = persisted; hook = sb.base/'pre-run.sh'
    if not shutil.which(shell): pytest.skip(f'{shell} not installed')
    fresh = sb.base/'fresh'; fresh.mkdir()
    body = f'set -u; cd /; . "{hook}"; echo "after:$PWD"'
    r = subprocess.run([shell, '-c', body], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    # the block leaves the caller's directory as it was, and the caller's script goes on
    assert r.returncode == 0 and r.stdout.strip().endswith('after:/'), (r.stdout, r.stderr)
    assert (fresh/'.local').is_symlink()
    # a failing restore (storage gone) only warns; a caller under `set -e` goes on
    os.rename(sb.storage/SCRIPT, sb.storage/'x'); (sb.storage/SCRIPT).write_text('exit 3\n')
    r = subprocess.run([shell, '-c', f'set -e; . "{hook}"; echo survived'], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert 'survived' in r.stdout and 'restore failed' in r.stderr

def test_hook_keeps_user_content(sb):
    hook = sb.base/'pre-run.sh'; hook.write_text('#!/usr/bin/env bash\npip install -q foo\n'); os.chmod(hook, 0o600)
    (sb.home/'.local').mkdir()
    persist('.local', home=sb.home, platform=plat(sb, hook))
    (sb.home/'.ipython').mkdir()
    persist('.ipython', home=sb.home, platform=plat(sb, hook))
    t = hook.read_text()
    assert t.startswith('#!/usr/bin/env bash\npip install -q foo\n') and t.count('# >>> persistlab >>>') == 1
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755

@pytest.mark.parametrize('ending', ['exit 0\n', '[ -n "${SKIP:-}" ] && return\nreturn\n', 'cat <<EOF\nnever closed\n', 'old block'])
def test_hook_block_runs_when_the_users_lines_end_early(sb, ending):
    "A pre-run.sh whose lines end it early (an exit; a return, as Paperspace sources it; a here-document left open): the block "
    "goes first, where it runs (appended after them it never ran, while the cell said 'startup hook updated')"
    from persistlab.storage import hook_block
    hook = sb.base/'pre-run.sh'
    old = hook_block(sb.storage) if ending == 'old block' else ''  # an earlier persistlab appended it after the exit
    hook.write_text('#!/bin/bash\necho user ran\n' + ('exit 0\n' + old if old else ending))
    make_tree(sb.home/'.local', 3)
    persist(['.local'], home=sb.home, platform=plat(sb, hook))
    t = hook.read_text()
    assert t.startswith('#!/bin/bash\n# >>> persistlab >>>') and t.count('# >>> persistlab >>>') == 1 and 'echo user ran\n' in t, t
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = subprocess.run(['bash', '-c', f'source {hook}; echo after'], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert os.readlink(fresh/'.local') == str(sb.storage/'.local') and 'user ran' in r.stdout, r.stdout + r.stderr

def test_hook_block_stays_last_after_plain_lines(sb):
    hook = sb.base/'pre-run.sh'; hook.write_text('#!/bin/bash\nif [ -n "$X" ]; then echo x; fi\necho user ran\n')
    make_tree(sb.home/'.local', 3)
    persist(['.local'], home=sb.home, platform=plat(sb, hook))
    assert hook.read_text().startswith('#!/bin/bash\nif [ -n "$X" ]; then echo x; fi\necho user ran\n# >>> persistlab >>>')

def test_script_on_a_full_storage_moves_nothing_and_says_so(sb, tmpfs):
    "A fresh instance whose image has its own ~/.local, storage on another filesystem with too little room: nothing is moved "
    "(mv had left a cut-off copy in the backup folder and storage full), a persistlab line says why, the rest is restored"
    st = tmpfs('keep', '2m'); make_tree(sb.home/'.local', 3); (sb.home/'.gitconfig').write_text('[user]\n')
    pl = detect(env=dict(HOME=str(sb.home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(st)))
    persist(['.local', '.gitconfig'], home=sb.home, platform=pl)
    fresh = sb.base/'fresh'; (fresh/'.local/lib').mkdir(parents=True); (fresh/'.local/lib/blob').write_bytes(os.urandom(3 << 20))
    free = shutil.disk_usage(st).free
    r = subprocess.run(['sh', str(st/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True, cwd='/')
    assert r.returncode == 1 and 'persistlab: .local: ~/.local is in the way' in r.stdout and 'kB free' in r.stdout, r.stdout + r.stderr
    assert (fresh/'.local/lib/blob').stat().st_size == 3 << 20 and not (fresh/'.local').is_symlink() and shutil.disk_usage(st).free >= free - 65536
    assert os.readlink(fresh/'.gitconfig') == str(st/'.gitconfig')

@pytest.mark.parametrize('boot', ['sh', 'python'])
def test_the_images_own_copy_is_backed_up_once_not_at_every_boot(persisted, boot):
    "Every fresh instance's image has the same ~/.local of its own: the first boot keeps it in the backup folder, later ones see it "
    "is there already (every file, byte for byte) and do not fill storage with one more copy per boot; a different one is kept"
    sb = persisted
    def boot_once(n, extra=None):
        fresh = sb.base/f'fresh{n}'; img = fresh/'.local/lib/python3.11/site-packages/imgpkg'; img.mkdir(parents=True)
        (img/'__init__.py').write_text('image = 1\n'); (img/'data.bin').write_bytes(b'x' * 50000)
        if extra: (img/'extra').write_text(extra)
        if boot == 'sh': r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True, cwd='/').stdout
        else: r = str(restore(home=fresh, platform=plat(sb)))
        assert os.readlink(fresh/'.local') == str(sb.storage/'.local'), r
        return r
    boot_once(1)
    kept = lambda: [p for p in (sb.storage/BACKUP).glob('*/.local')]
    assert len(kept()) == 1
    r = boot_once(2); assert len(kept()) == 1 and 'not kept twice' in r, r
    boot_once(3, extra='other'); assert len(kept()) == 2  # not the same: kept

def test_python_restore_runs_the_same_script(persisted):
    sb = persisted; fresh = sb.base/'fresh'; fresh.mkdir()
    r = restore(home=fresh, platform=plat(sb))
    assert ('.local', 'linked to ' + str(sb.storage/'.local'), '') in list(r)
    assert (fresh/'.ssh/id_ed25519').read_text() == 'PRIVATE'

def test_missing_hook_dir_is_reported_not_fatal(sb):
    (sb.home/'.local').mkdir()
    r = persist('.local', home=sb.home, platform=plat(sb, sb.base/'no/such/pre-run.sh'))
    assert ('startup hook', 'not written') in [(x[0], x[1]) for x in r] and (sb.home/'.local').is_symlink()

def test_restore_without_manifest_is_a_clear_error(sb):
    with pytest.raises(PersistError, match='nothing persisted'): restore(home=sb.home, platform=plat(sb))

def test_restore_of_ten_entries_is_fast_enough_to_measure(sb):
    "Correctness of a 10-entry restore; its speed is measured by bench/restore.py, not asserted here"
    for i in range(10): (sb.home/f'.d{i}').mkdir(); (sb.home/f'.d{i}/f').write_text(str(i))
    persist([f'.d{i}' for i in range(10)], home=sb.home, platform=plat(sb))
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert r.returncode == 0 and all((fresh/f'.d{i}/f').read_text() == str(i) for i in range(10))
