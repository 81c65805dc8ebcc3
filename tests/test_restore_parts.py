"A restore brings its independent parts back at the same time: the linked paths, each snapshot, the saved packages"
import os, sys, json
from pathlib import Path
import pytest
from conftest import snapshot, make_tree
from persistlab.platforms import detect
from persistlab.persist import persist, restore, autorestore, PersistError
from persistlab.archive import archive_persist
from persistlab.storage import BACKUP, read_manifest, write_manifest
from persistlab import archive, packages

def local(sb, home=None):
    return detect(env=dict(HOME=str(home or sb.home), PERSISTLAB_PLATFORM='local', PERSISTLAB_STORAGE=str(sb.storage)))

def colab(sb, home=None):
    return detect(env=dict(HOME=str(home or sb.home), COLAB_RELEASE_TAG='release', PERSISTLAB_STORAGE=str(sb.storage)), colab_importable=True)

def day(sb):
    "A home with a linked path, a copied .ssh, three snapshotted paths, and a manifest recording one saved package"
    h = sb.home
    make_tree(h/'.local', 40); (h/'.config/app').mkdir(parents=True); (h/'.config/app/a.toml').write_text('a = 1\n')
    (h/'.ssh').mkdir(mode=0o700); (h/'.ssh/id_ed25519').write_text('KEY'); (h/'.gitconfig').write_text('[user]\n\tname = me\n')
    (h/'notes').mkdir(); (h/'notes/n.txt').write_text('n')
    persist(['notes', '.ssh'], home=h, platform=local(sb))
    archive_persist(['.local', '.config', '.gitconfig'], home=h, platform=local(sb))
    return h

def record_package(sb, wheel_there=False):
    "The manifest records one package for this Python; its wheel is missing unless `wheel_there`, so installing it fails"
    info = packages.probe()
    m = read_manifest(sb.storage)
    w = 'plbnone-1.0-py3-none-any.whl'
    m['packages'] = dict(sets={info['tag']: dict(python=info['version'], saved='2026-01-01T00:00:00Z', image='x',
                     packages={'plbnone': dict(version='1.0', wheel=w, size=1, sha256='0' * 64)})})
    write_manifest(sb.storage, m)

def test_one_part_failing_keeps_the_others_and_says_which(sb):
    day(sb); record_package(sb)  # the packages part fails: its wheel is gone from the wheelhouse
    fresh = sb.base/'fresh'; (fresh/'.config').mkdir(parents=True); (fresh/'.config/mine').write_text('the image had this')
    (sb.storage/BACKUP).parent.mkdir(exist_ok=True); (sb.storage/BACKUP).write_text('not a folder')  # so .config cannot be backed up
    with pytest.raises(PersistError) as e: restore(home=fresh, platform=local(sb, fresh), packages=True, quiet=True)
    msg = str(e.value)
    assert msg.startswith('.config: ') and 'packages: ' in msg and 'does not match the manifest' in msg, msg
    assert '.local' in msg.split('done meanwhile: ')[1] and 'notes' in msg.split('done meanwhile: ')[1]
    assert snapshot(fresh/'.local') == snapshot(sb.home/'.local') and (fresh/'.gitconfig').read_text().endswith('me\n')
    assert os.readlink(fresh/'notes') == str(sb.storage/'notes') and (fresh/'.ssh/id_ed25519').read_text() == 'KEY'
    assert (fresh/'.config/mine').read_text() == 'the image had this'  # the failed part changed nothing

def test_autorestore_reports_the_failed_part_and_restores_the_rest(sb):
    h = sb.home; make_tree(h/'.local', 20); (h/'.ssh').mkdir(mode=0o700); (h/'.ssh/k').write_text('K')
    archive_persist(['.local', '.ssh'], home=h, platform=colab(sb)); record_package(sb)
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = autorestore(colab(sb, fresh), packages=True)
    assert [(x[0], x[1]) for x in r] == [('.local', 'restored'), ('.ssh', 'restored'), ('packages', 'failed')], r
    assert 'packages failed' in r.title and snapshot(fresh/'.local') == snapshot(h/'.local')
    assert archive.restored(sb.storage, fresh) == {'.local', '.ssh'}  # marked once, both: a kernel restart does not unpack them again
    assert autorestore(colab(sb, fresh), packages=True)[0][:2] == ('packages', 'failed')  # not marked: the next load tries again

def test_same_result_as_one_after_another(sb, monkeypatch):
    day(sb)
    a, b = sb.base/'a', sb.base/'b'
    for d in (a, b): (d/'.config').mkdir(parents=True); (d/'.config/old').write_text('image')  # backed up on the way
    ra = restore(home=a, platform=local(sb, a), quiet=True)
    def one_by_one(parts, desc='', quiet=False):
        out = {}
        for n, f in parts.items():
            try: out[n] = f()
            except Exception as e: out[n] = e
        return out
    monkeypatch.setattr(archive, 'together', one_by_one)
    rb = restore(home=b, platform=local(sb, b), quiet=True)
    strip = lambda r, d: [(x[0], x[1], x[2].replace(str(d), 'HOME')) for x in r if x[1] not in ('backed up', 'already kept')]  # (b's image copy is a's)
    assert strip(ra, a) == strip(rb, b)
    assert snapshot(a) == snapshot(b)
    assert [x[:2] for x in rb if x[0] == '.config'][0] == ('.config', 'already kept')  # the same image copy is kept once
    assert [x[0] for x in ra if x[1].startswith(('linked', 'copied', 'restored'))] == ['notes', '.ssh', '.local', '.config', '.gitconfig']

def test_the_parts_overlap(sb, tmp_path, monkeypatch):
    "Each snapshot's tar waits for the other's to start: one after another, the first would give up after 10 s and fail"
    h = sb.home; (h/'.one').mkdir(); (h/'.one/f').write_text('1'); (h/'.two').mkdir(); (h/'.two/f').write_text('2')
    archive_persist(['.one', '.two'], home=h, platform=local(sb))
    bin_, marks = tmp_path/'bin', tmp_path/'marks'; bin_.mkdir(); marks.mkdir()
    real = next(str(Path(d)/'tar') for d in os.environ['PATH'].split(':') if os.access(Path(d)/'tar', os.X_OK))
    (bin_/'tar').write_text(f'''#!/bin/sh
case "$1" in -x*) touch "{marks}/$$"; i=0
  while [ "$(ls "{marks}" | wc -l)" -lt 2 ]; do i=$((i+1)); [ $i -gt 100 ] && {{ echo "alone: nothing else is unpacking" >&2; exit 1; }}; sleep 0.1; done;; esac
exec {real} "$@"
''')
    (bin_/'tar').chmod(0o755)
    monkeypatch.setenv('PATH', f"{bin_}:{os.environ['PATH']}")
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = restore(home=fresh, platform=local(sb, fresh), quiet=True)
    assert [(x[0], x[1]) for x in r] == [('.one', 'restored'), ('.two', 'restored')], r
    assert (fresh/'.one/f').read_text() == '1' and (fresh/'.two/f').read_text() == '2' and len(list(marks.iterdir())) == 2

def test_a_kept_cache_is_restored_before_the_packages(sb):
    "uv unpacks into ~/.cache: with .cache kept, the install waits for it, and its failure is still said, not a crash"
    h = sb.home; (h/'.cache/pip').mkdir(parents=True); (h/'.cache/pip/x').write_text('x'); (h/'notes').mkdir()
    persist(['.cache', 'notes'], home=h, platform=local(sb)); record_package(sb)
    fresh = sb.base/'fresh'; fresh.mkdir()
    with pytest.raises(PersistError) as e: restore(home=fresh, platform=local(sb, fresh), packages=True, quiet=True)
    assert str(e.value).startswith('packages: ') and 'does not match the manifest' in str(e.value), e.value
    assert os.readlink(fresh/'.cache') == str(sb.storage/'.cache') and os.readlink(fresh/'notes') == str(sb.storage/'notes')
