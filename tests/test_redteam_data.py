"Issue 23, data: a save, restore or undo that fails or is killed leaves the old copy in place; long names; rename-edits"
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import snapshot, Sandbox
from persistlab.core import OLD, NEW
from persistlab.storage import SCRIPT, BACKUP, TMP

# each call as a front end makes it: persistlab's errors are one line on stderr and exit code 1
SAVE = "from persistlab.cli import _run; from persistlab.persist import save; _run(save, ['.ssh'])"
PERSIST_SSH = "from persistlab.cli import _run; from persistlab.persist import persist; _run(persist, ['.ssh'])"
STATUS = "from persistlab.cli import _run; from persistlab.persist import status; _run(status)"
UNDO = "from persistlab.cli import _run; from persistlab.persist import undo; _run(undo, '.local')"

def keys(sb, extra=b''):
    d = sb.home/'.ssh'; d.mkdir(mode=0o700, exist_ok=True)
    (d/'id_ed25519').write_text('the old key\n'); (d/'config').write_text('Host x\n')
    if extra: (d/'known_hosts').write_bytes(extra)
    return d

def fresh(sb, name='fresh'):
    "A new instance: an empty home restored by the generated script alone"
    h = sb.base/name; h.mkdir()
    r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(h), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    return h, r

def one_line(r):
    "A refusal the way a user sees it: exit 1, one line on stderr, no traceback"
    assert r.returncode == 1 and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (r.stdout, r.stderr)
    return r.stderr

def test_save_into_full_storage_keeps_storages_copy(tmpfs, tmp_path):
    sb = Sandbox(tmp_path/'sb'); sb.storage = tmpfs('st', '1m')
    keys(sb); sb.py(PERSIST_SSH)
    want = snapshot(sb.storage/'.ssh')
    (sb.home/'.ssh/id_ed25519').write_text('the new key\n'); (sb.home/'.ssh/big').write_bytes(os.urandom(1200_000))
    err = one_line(sb.py(SAVE, check=False))
    assert 'nothing changed' in err or 'untouched' in err or 'as it was' in err
    assert snapshot(sb.storage/'.ssh') == want  # storage still has the old keys
    assert 'lost' not in sb.py(STATUS).stdout
    h, r = fresh(sb)
    assert r.returncode == 0 and (h/'.ssh/id_ed25519').read_text() == 'the old key\n', r.stdout + r.stderr

@pytest.fixture
def xfs(shm_dir, tmp_path):
    "Home on tmpfs, storage on disk: every copy between them is a real cross-filesystem copy"
    sb = Sandbox(tmp_path/'sb'); sb.home = shm_dir/'home'; sb.home.mkdir()
    return sb

@pytest.mark.parametrize('point', ['copied', 'swapped'])  # before and after the swap
def test_save_killed_at_each_step_never_leaves_storage_without_ssh(xfs, point):
    sb = xfs; keys(sb); sb.py(PERSIST_SSH)
    (sb.home/'.ssh/id_ed25519').write_text('the new key\n')
    r = sb.py(SAVE, check=False, PERSISTLAB_FAILPOINT=point)
    assert r.returncode == -signal.SIGKILL, (r.stdout, r.stderr)
    assert (sb.storage/'.ssh/id_ed25519').read_text() in ('the old key\n', 'the new key\n')
    assert 'lost' not in sb.py(STATUS).stdout
    h, r = fresh(sb)  # the instance ends now: the next one still gets keys
    assert r.returncode == 0 and (h/'.ssh/id_ed25519').exists(), r.stdout + r.stderr
    sb.py(SAVE)  # the user runs the cell again: home's copy is saved, the old one is in the backup folder
    assert (sb.storage/'.ssh/id_ed25519').read_text() == 'the new key\n'
    olds = {p.read_text() for p in (sb.storage/BACKUP).glob('*/.ssh*/id_ed25519')}
    assert 'the old key\n' in olds
    left = [p for p in sb.storage.rglob('*') if p.name.endswith((NEW, OLD)) and BACKUP not in p.parts]  # (a backup may keep one)
    assert not left and not any((sb.storage/TMP).iterdir())

def test_restore_into_full_home_keeps_homes_copy(tmpfs, tmp_path):
    "storage's .ssh wins, but does not fit in home: home keeps its own .ssh, nothing went to the backup folder"
    sb = Sandbox(tmp_path/'sb'); sb.home = tmpfs('home', '1m')
    keys(sb); sb.py(PERSIST_SSH)
    (sb.storage/'.ssh/known_hosts').write_bytes(os.urandom(1500_000))  # grown from another instance
    (sb.home/'.ssh/id_ed25519').write_text('this instance\n')
    want = snapshot(sb.home/'.ssh')
    r = sb.py(PERSIST_SSH, check=False)
    one_line(r)
    assert snapshot(sb.home/'.ssh') == want and not (sb.storage/BACKUP).exists()

def test_undo_on_a_full_home_keeps_the_link(tmpfs, tmp_path):
    sb = Sandbox(tmp_path/'sb'); sb.home = tmpfs('home', '1m')
    (sb.home/'.local').mkdir(); (sb.home/'.local/f').write_text('1')
    sb.py("from persistlab.persist import persist; persist(['.local'])")
    (sb.home/'.local/big').write_bytes(os.urandom(1500_000))  # through the link: into storage
    err = one_line(sb.py(UNDO, check=False))
    assert 'nothing changed' in err
    assert os.readlink(sb.home/'.local') == str(sb.storage/'.local') and (sb.storage/'.local/f').read_text() == '1'
    assert 'linked' in sb.py(STATUS).stdout

@pytest.mark.parametrize('point', ['copied', 'swapped'])
def test_undo_killed_then_rerun(xfs, point):
    sb = xfs; (sb.home/'.local').mkdir(); (sb.home/'.local/f').write_text('1')
    sb.py("from persistlab.persist import persist; persist(['.local'])")
    r = sb.py(UNDO, check=False, PERSISTLAB_FAILPOINT=point)
    assert r.returncode == -signal.SIGKILL, (r.stdout, r.stderr)
    assert (sb.home/'.local/f').read_text() == '1'  # through the link or in home: never gone
    sb.py(UNDO)
    assert (sb.home/'.local/f').read_text() == '1' and not (sb.home/'.local').is_symlink()
    assert not [p for r in (sb.home, sb.storage) for p in r.rglob('*') if p.name.endswith((NEW, OLD, '.persistlab-link'))]

LONG = 'n' * 250  # a legal ext4 name, with no room for a suffix

def test_a_250_byte_name_persists_restores_and_undoes_across_filesystems(xfs):
    sb = xfs; d = sb.home/LONG; d.mkdir(); (d/'f').write_text('long')
    (sb.home/'.bashrc').write_text('rc\n')
    for code in (f"from persistlab.persist import persist; print(persist(['{LONG}', '.bashrc']))",
                 "from persistlab.persist import restore; print(restore())", STATUS):
        r = sb.py(code, check=False); assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr
    assert (sb.home/LONG).is_symlink() and (sb.home/LONG/'f').read_text() == 'long'
    h, r = fresh(sb); assert r.returncode == 0 and (h/LONG/'f').read_text() == 'long', r.stdout + r.stderr
    sb.py(f"from persistlab.persist import undo; print(undo('{LONG}'))")
    assert (sb.home/LONG/'f').read_text() == 'long' and not (sb.home/LONG).is_symlink()

def test_an_impossible_name_is_one_line(sb):
    f = sb.base/'cli.py'; f.write_text('import sys\nfrom persistlab.cli import persist_cli\nsys.exit(persist_cli())\n')
    r = sb.run(sys.executable, f, 'x' * 300, '--create', check=False)
    assert 'filesystems allow 255' in one_line(r)

# ---- a persisted file edited by a tool that writes a new file and renames it over the link
PERSIST_RC = "from persistlab.cli import _run; from persistlab.persist import persist; _run(persist, ['.bashrc'])"
RESTORE = "from persistlab.cli import _run; from persistlab.persist import restore; _run(restore)"

def rc_persisted(sb, **env):
    (sb.home/'.bashrc').write_text('alias ll=old\n'); sb.py(PERSIST_RC, **env)
    assert (sb.home/'.bashrc').is_symlink()

def sed(sb, new):
    subprocess.run(['sed', '-i', f's/=.*/={new}/', str(sb.home/'.bashrc')], check=True)  # GNU sed -i: a new file renamed over
    assert not (sb.home/'.bashrc').is_symlink()

@pytest.mark.parametrize('again', [PERSIST_RC, RESTORE], ids=['persist', 'restore'])
def test_an_edit_saved_over_the_link_wins_when_the_cell_runs_again(xfs, again):
    sb = xfs; rc_persisted(sb); sed(sb, 'new')
    sb.py(again)
    assert (sb.home/'.bashrc').is_symlink() and (sb.storage/'.bashrc').read_text() == 'alias ll=new\n'
    assert [p.read_text() for p in (sb.storage/BACKUP).glob('*/.bashrc')] == ['alias ll=old\n']
    h, r = fresh(sb); assert (h/'.bashrc').read_text() == 'alias ll=new\n', r.stdout + r.stderr

def test_a_fresh_images_own_file_still_loses_to_storage(sb):
    "The image's .bashrc on a new instance is newer on disk than storage's, but persistlab never linked it there"
    rc_persisted(sb)
    new = sb.base/'new'; new.mkdir(); (new/'.bashrc').write_text('image\n')
    sb.py(RESTORE, home=new)
    assert (new/'.bashrc').is_symlink() and (sb.storage/'.bashrc').read_text() == 'alias ll=old\n'
    assert [p.read_text() for p in (sb.storage/BACKUP).glob('*/.bashrc')] == ['image\n']

def test_the_watch_takes_an_edit_into_storage_before_the_instance_ends(sb):
    "The supervisor checks every few seconds, and once more when it is stopped (a shutdown's SIGTERM)"
    from persistlab import procs
    env = dict(PERSISTLAB_WATCH='1', PERSISTLAB_WATCH_PERIOD='3600', PERSISTLAB_RUNTIME=sb.base/'run')
    rc_persisted(sb, **env)
    s = procs.Proc.load(procs.SUPERVISOR, sb.base/'run')
    try:
        assert s and s.alive() and list((sb.base/'run/watches').glob('files-*.json'))
        for _ in range(400):  # until its SIGTERM handler is in place
            if 'running' in (sb.base/'run/supervisor.log').read_text(): break
            time.sleep(0.05)
        sed(sb, 'at-shutdown')
        os.kill(s.pid, signal.SIGTERM)  # what a container's stop does to every process
        for _ in range(200):
            if not s.alive(): break
            time.sleep(0.05)
        assert (sb.storage/'.bashrc').read_text() == 'alias ll=at-shutdown\n', (sb.base/'run/supervisor.log').read_text()
        assert (sb.home/'.bashrc').is_symlink()
        # and while it runs: every period
        sb.py(PERSIST_RC, **{**env, 'PERSISTLAB_WATCH_PERIOD': '0.2'})
        s = procs.Proc.load(procs.SUPERVISOR, sb.base/'run'); sed(sb, 'while-running')
        for _ in range(300):
            if (sb.storage/'.bashrc').read_text() == 'alias ll=while-running\n': break
            time.sleep(0.05)
        assert (sb.storage/'.bashrc').read_text() == 'alias ll=while-running\n', (sb.base/'run/supervisor.log').read_text()
    finally:
        if s and s.alive(): s.stop()
