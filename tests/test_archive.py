"Archive snapshots (Colab, Kaggle, Deepnote): round trips, crashes, a full Drive, Python versions, a fake google.colab"
import os, sys, signal, subprocess, time, textwrap, json
from pathlib import Path
import pytest
from conftest import snapshot, make_tree, Sandbox
from persistlab.platforms import detect
from persistlab.persist import restore, status, undo, PersistError
from persistlab.storage import BACKUP, TMP, read_manifest
from persistlab.archive import archive_persist, save, archive_restore, snapshot_name
from persistlab.persist import autorestore
from persistlab.storage import SNAPDIR

def colab(sb, **kw):
    return detect(env=dict(HOME=str(sb.home), COLAB_RELEASE_TAG='release', PERSISTLAB_STORAGE=str(sb.storage), **kw), colab_importable=True)

def odd_tree(p):
    make_tree(p, 60)
    (p/'share/empty/deeper').mkdir(parents=True)
    os.symlink('../bin/tool', p/'share/rel-link'); os.symlink('/nonexistent/target', p/'share/dangling')
    (p/'share/quote\'s "and" $dollar').write_text('odd')
    return snapshot(p)

@pytest.mark.parametrize('name,var', [('colab', 'COLAB_RELEASE_TAG'), ('kaggle', 'KAGGLE_KERNEL_RUN_TYPE'), ('deepnote', 'DEEPNOTE_PROJECT_ID')])
def test_archive_platforms_detected(name, var):
    p = detect(env={'HOME': '/root', var: '1'}, root='/nonexistent', colab_importable=False)
    assert (p.name, p.strategy) == (name, 'archive')

def test_round_trip_into_a_fresh_home(sb):
    want = odd_tree(sb.home/'.local'); (sb.home/'.ssh').mkdir(); (sb.home/'.ssh/id_ed25519').write_text('K')
    r = archive_persist(['.local', '.ssh'], home=sb.home, platform=colab(sb))
    assert [x[1] for x in r] == ['saved', 'saved'] and not (sb.home/'.local').is_symlink()
    assert {e['strategy'] for e in read_manifest(sb.storage)['entries']} == {'archive'}
    fresh = sb.base/'fresh'; fresh.mkdir()
    restore(home=fresh, platform=colab(sb))
    assert snapshot(fresh/'.local') == want and (fresh/'.ssh/id_ed25519').read_text() == 'K'
    assert os.access(fresh/'.local/bin/tool', os.X_OK) and os.readlink(fresh/'.local/share/dangling') == '/nonexistent/target'

def test_persist_on_archive_platform_routes_to_snapshots_and_list_undo(sb):
    from persistlab.persist import persist
    make_tree(sb.home/'.local', 10)
    persist('.local', home=sb.home, platform=colab(sb))
    (snap,) = (sb.storage/SNAPDIR).iterdir()
    assert snap.name == snapshot_name('.local', f'{sys.version_info.major}.{sys.version_info.minor}')
    (row,) = status(home=sb.home, platform=colab(sb))
    assert row[1].startswith('saved ') and 'snapshot' in row[2]
    undo('.local', home=sb.home, platform=colab(sb))
    assert read_manifest(sb.storage)['entries'] == [] and (sb.home/'.local').is_dir() and list((sb.storage/BACKUP).rglob('*.tar.gz'))

def test_restore_over_existing_data_backs_it_up(sb):
    make_tree(sb.home/'.local', 10); archive_persist('.local', home=sb.home, platform=colab(sb))
    fresh = sb.base/'fresh'; (fresh/'.local/bin').mkdir(parents=True); (fresh/'.local/bin/mine').write_text('mine')
    restore(home=fresh, platform=colab(sb))
    (b,) = (sb.storage/BACKUP).iterdir()
    assert (b/'.local/bin/mine').read_text() == 'mine' and (fresh/'.local/bin/tool').exists()

def test_save_refreshes_and_keeps_previous_until_complete(sb):
    make_tree(sb.home/'.local', 10); archive_persist('.local', home=sb.home, platform=colab(sb))
    (sb.home/'.local/new.txt').write_text('new')
    save(home=sb.home, platform=colab(sb))
    fresh = sb.base/'fresh'; fresh.mkdir(); restore(home=fresh, platform=colab(sb))
    assert (fresh/'.local/new.txt').read_text() == 'new'

@pytest.mark.parametrize('how', ['failpoint', 'timed'])
def test_sigkill_during_save_leaves_previous_snapshot_usable(sb, how):
    want = snapshot(make_tree(sb.home/'.local', 30))
    env = dict(COLAB_RELEASE_TAG='r', PERSISTLAB_PLATFORM='colab')
    sb.py("from persistlab.archive import save; from persistlab.persist import persist; persist(['.local'])", **env)
    (snap,) = (sb.storage/SNAPDIR).iterdir(); before = snap.read_bytes()
    make_tree(sb.home/'.local/more', 3000, big=4)
    code = "from persistlab.archive import save; save()"
    if how == 'failpoint':
        r = sb.py(code, check=False, PERSISTLAB_FAILPOINT='archived', **env); assert r.returncode == -signal.SIGKILL
    else:
        p = subprocess.Popen([sys.executable, '-c', code], env=sb.env(**env)); time.sleep(0.3); p.kill(); p.wait(30)
    assert snap.read_bytes() == before or how == 'timed'  # a timed kill may land after the rename: then the new one is whole
    fresh = sb.base/'fresh'; fresh.mkdir()
    sb.py("from persistlab.persist import restore; restore()", home=fresh, **env)
    got = snapshot(fresh/'.local')
    assert got == want or {k: v for k, v in got.items() if not k.startswith('more')} == want

def test_full_storage_fails_cleanly_old_snapshot_intact(tmpfs, tmp_path):
    sb = Sandbox(tmp_path/'sb'); sb.storage = tmpfs('drive', '2m')
    make_tree(sb.home/'.local', 10); archive_persist('.local', home=sb.home, platform=colab(sb))
    (snap,) = (sb.storage/SNAPDIR).iterdir(); before = snap.read_bytes()
    for i in range(3): (sb.home/f'.local/blob{i}').write_bytes(os.urandom(1 << 20))  # random: gzip cannot shrink it
    with pytest.raises(PersistError, match='storage is full.*previous snapshot is intact'):
        save(home=sb.home, platform=colab(sb))
    assert snap.read_bytes() == before and not any((sb.storage/TMP).iterdir())

def test_python_mismatch_restores_bin_not_packages(sb):
    make_tree(sb.home/'.local', 10)
    archive_persist('.local', home=sb.home, platform=colab(sb), python='3.9')
    fresh = sb.base/'fresh'; fresh.mkdir(); out = []
    r = restore(home=fresh, platform=colab(sb))
    rows = {x[1]: x[2] for x in r}
    assert 'python differs' in rows and 'Python 3.9' in rows['python differs']
    assert (fresh/'.local/bin/tool').exists() and not list((fresh/'.local/lib').glob('python*'))

FAKE_COLAB = '''
import os
from pathlib import Path
def mount(mountpoint, **kw):
    (Path(mountpoint)/'MyDrive').mkdir(parents=True, exist_ok=True)
    print('Mounted at', mountpoint)
'''

@pytest.fixture
def fake_colab(tmp_path):
    d = tmp_path/'fakecolab'; (d/'google/colab').mkdir(parents=True)
    (d/'google/__init__.py').write_text(''); (d/'google/colab/__init__.py').write_text('')
    (d/'google/colab/drive.py').write_text(FAKE_COLAB)
    return d

def ipython(sb, code, **env):
    return subprocess.run([sys.executable, '-m', 'IPython', '--quick', '--no-banner', '--simple-prompt', '--colors=NoColor'],
                          input=textwrap.dedent(code).strip() + '\nexit\n', env=sb.env(**env), capture_output=True, text=True, timeout=120)

def test_colab_flow_with_fake_google_colab(sb, fake_colab):
    "Drive not mounted: say so with the exact call; --mount mounts; next session's %load_ext restores by itself"
    drive = sb.base/'content/drive'; st = drive/'MyDrive/persistlab'; sb.storage = st
    env = dict(PYTHONPATH=fake_colab, PERSISTLAB_STORAGE=st, PERSISTLAB_PLATFORM='', COLAB_RELEASE_TAG='release-1')
    make_tree(sb.home/'.local', 10)
    r = ipython(sb, '''
        %load_ext persistlab
        %persist .local
        %persist --mount .local
        ''', **env)
    out = r.stdout + r.stderr
    assert "drive.mount('/content/drive')" in out and f'Mounted at {drive}' in out and 'saved' in out, out
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = ipython(sb, '%load_ext persistlab', home=fresh, **env)
    assert (fresh/'.local/bin/tool').exists() and 'restored' in r.stdout, r.stdout + r.stderr
    r = ipython(sb, '%load_ext persistlab', home=sb.base/'fresh2', PERSISTLAB_AUTORESTORE=0, **env)
    assert not (sb.base/'fresh2/.local').exists()
