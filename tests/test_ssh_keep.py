"A persisted .ssh restored on a rented box keeps the box's own files: the provider's authorized_keys is how the user gets in"
import os, subprocess
from pathlib import Path
import pytest
from conftest import Sandbox
from persistlab.platforms import detect
from persistlab.storage import SCRIPT, BACKUP

PERSIST = "from persistlab.cli import _run; from persistlab.persist import persist; _run(persist, ['.ssh'])"
RESTORE = "from persistlab.cli import _run; from persistlab.persist import restore; _run(restore)"
AUTH = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIlaptop laptop\n'

def mode(p): return oct(os.stat(p).st_mode & 0o777)

def keys(home):
    "The user's keys as persisted from the first box"
    d = Path(home)/'.ssh'; d.mkdir(mode=0o700)
    for n, t in (('id_ed25519', 'the key\n'), ('id_ed25519.pub', 'ssh-ed25519 AAAA me\n'), ('config', 'Host x\n')): (d/n).write_text(t)
    (d/'sub').mkdir(); (d/'sub/x').write_text('x')

def box(sb, name='box'):
    "A fresh rented box: the provider wrote authorized_keys (loose mode), and the image has its own known_hosts and id_ed25519"
    h = sb.base/name; d = h/'.ssh'; d.mkdir(parents=True, mode=0o755)
    (d/'authorized_keys').write_text(AUTH); os.chmod(d/'authorized_keys', 0o664)
    (d/'known_hosts').write_text('github.com ssh-ed25519 AAAA\n'); (d/'id_ed25519').write_text('the image key\n')
    (d/'sub').mkdir(); (d/'sub/y').write_text('y')
    return h

def kept(h):
    d = h/'.ssh'
    assert (d/'authorized_keys').read_text() == AUTH and (d/'known_hosts').exists() and (d/'sub/y').read_text() == 'y'
    assert (d/'id_ed25519').read_text() == 'the key\n' and (d/'config').read_text() == 'Host x\n' and (d/'sub/x').read_text() == 'x'
    assert [mode(d), mode(d/'authorized_keys'), mode(d/'id_ed25519'), mode(d/'id_ed25519.pub'), mode(d/'known_hosts'), mode(d/'sub')] == \
           ['0o700', '0o600', '0o600', '0o644', '0o644', '0o700']

def backups(storage, rel='.ssh'):
    b = Path(storage)/BACKUP
    return sorted(p for p in b.glob(f'*/{rel}')) if b.is_dir() else []

@pytest.mark.parametrize('how', ['sh', 'restore', 'persist'])
def test_local_storage_restore_keeps_authorized_keys(sb, how):
    keys(sb.home); sb.py(PERSIST)
    h = box(sb)
    if how == 'sh': r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(h), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    else: r = sb.py(RESTORE if how == 'restore' else PERSIST, home=h, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    kept(h)
    [b] = backups(sb.storage)  # the image's key that storage's replaced: in the backup folder, as before
    assert (b/'id_ed25519').read_text() == 'the image key\n' and (b/'authorized_keys').read_text() == AUTH
    again = sb.py(RESTORE, home=h)  # the next boot: in sync, no new backup
    assert 'in sync' in again.stdout and len(backups(sb.storage)) == 1, again.stdout
    kept(h)

def test_archive_snapshot_restore_keeps_authorized_keys(sb, monkeypatch):
    from persistlab.archive import archive_persist
    from persistlab.persist import restore
    monkeypatch.setenv('PERSISTLAB_RUN', str(sb.base/'run1'))
    colab = lambda h: detect(env=dict(HOME=str(h), COLAB_RELEASE_TAG='release', PERSISTLAB_STORAGE=str(sb.storage)), colab_importable=True)
    keys(sb.home); archive_persist('.ssh', home=sb.home, platform=colab(sb.home))
    h = box(sb); monkeypatch.setenv('PERSISTLAB_RUN', str(sb.base/'run2'))
    r = restore(home=h, platform=colab(h))
    assert ('.ssh', 'restored') in [x[:2] for x in r], r
    kept(h)
    assert (backups(sb.storage)[0]/'id_ed25519').read_text() == 'the image key\n'

def test_remote_restore_keeps_authorized_keys(sb, monkeypatch):
    from persistlab.remote import remote_persist, remote_restore
    url = f'file://{sb.base}/bucket'; (sb.base/'bucket').mkdir()
    monkeypatch.setenv('PERSISTLAB_RUN', str(sb.base/'run1'))
    keys(sb.home); remote_persist(['.ssh'], url, sb.home)
    h = box(sb); monkeypatch.setenv('PERSISTLAB_RUN', str(sb.base/'run2'))
    r = remote_restore(url, h)
    assert ('.ssh', 'restored') in [x[:2] for x in r], r
    kept(h)

LAPTOP2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIfirstbox first-box-provider\n'

@pytest.mark.parametrize('how', ['sh', 'restore', 'archive'])
def test_authorized_keys_from_both_boxes_get_in(sb, monkeypatch, how):
    "Storage's authorized_keys (saved on the first box) and the next box's own: every line of both, so no box locks the user out"
    keys(sb.home); (sb.home/'.ssh/authorized_keys').write_text(LAPTOP2)
    h = box(sb)
    if how == 'archive':
        from persistlab.archive import archive_persist
        from persistlab.persist import restore
        colab = lambda x: detect(env=dict(HOME=str(x), COLAB_RELEASE_TAG='release', PERSISTLAB_STORAGE=str(sb.storage)), colab_importable=True)
        monkeypatch.setenv('PERSISTLAB_RUN', str(sb.base/'run1')); archive_persist('.ssh', home=sb.home, platform=colab(sb.home))
        monkeypatch.setenv('PERSISTLAB_RUN', str(sb.base/'run2')); restore(home=h, platform=colab(h))
    else:
        sb.py(PERSIST)
        if how == 'sh': r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(h), PATH='/usr/bin:/bin'), capture_output=True, text=True)
        else: r = sb.py(RESTORE, home=h, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    got = (h/'.ssh/authorized_keys').read_text().splitlines()
    assert sorted(got) == sorted([LAPTOP2.strip(), AUTH.strip()]), got
    assert mode(h/'.ssh/authorized_keys') == '0o600' and (h/'.ssh/id_ed25519').read_text() == 'the key\n'
