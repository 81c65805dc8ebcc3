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

@pytest.fixture(autouse=True)
def vm_run_dir(tmp_path, monkeypatch):
    "Each test is its own VM: the restore-once marker lives in a folder of its own"
    monkeypatch.setenv('PERSISTLAB_RUN', str(tmp_path/'run'))

def colab(sb, **kw):
    return detect(env={**dict(HOME=str(sb.home), COLAB_RELEASE_TAG='release', PERSISTLAB_STORAGE=str(sb.storage)), **kw}, colab_importable=True)

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
    assert read_manifest(sb.storage)['entries'] == [] and (sb.home/'.local').is_dir() and list((sb.storage/BACKUP).rglob('*.tar.*'))

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
    with pytest.raises(PersistError, match=r'storage is full\); the previous snapshot is intact, nothing changed; free some room in .* and save again'):
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


# --- storage wins, once per VM, bad snapshots, modes ---

def mode(p): return oct(os.lstat(p).st_mode & 0o777)

def test_storage_wins_restore_once_and_save_is_the_one_overwrite(sb, tmp_path, monkeypatch):
    make_tree(sb.home/'.local', 10)
    r = archive_persist(['.local', '.ssh'], home=sb.home, platform=colab(sb))  # no ~/.ssh yet: a note, the rest goes on
    assert {x[0]: x[1] for x in r} == {'.local': 'saved', '.ssh': 'skipped'}
    (snap,) = (sb.storage/SNAPDIR).iterdir(); before = snap.read_bytes()
    assert mode(snap) == '0o600'
    monkeypatch.setenv('PERSISTLAB_RUN', str(tmp_path/'run2'))  # a new VM: fresh image home, same storage
    fresh = sb.base/'fresh'; (fresh/'.local/bin').mkdir(parents=True); (fresh/'.local/bin/image-tool').write_text('x')
    (fresh/'.local/share/jupyter/runtime').mkdir(parents=True); (fresh/'.local/share/jupyter/runtime/kernel-9.json').write_text('{}')
    r = archive_persist(['.local'], home=fresh, platform=colab(sb))
    rows = {x[1]: x[2] for x in r}
    assert 'restored' in rows and snap.read_bytes() == before  # storage won: not saved over
    assert (fresh/'.local/bin/tool').exists() and (fresh/'.local/share/jupyter/runtime/kernel-9.json').exists()  # the live Jupyter's files stay
    assert list((sb.storage/BACKUP).glob('*/.local/bin/image-tool'))  # home's differing copy kept
    (fresh/'.local/bin/mine').write_text('installed after the restore')
    for again in (lambda: archive_persist(['.local'], home=fresh, platform=colab(sb)), lambda: autorestore(colab(sb, HOME=str(fresh)))):
        r = again()  # re-running the cell, or a kernel restart's %load_ext: no second restore
        assert r is None or [x[1] for x in r] == ['kept'], r
        assert (fresh/'.local/bin/mine').exists() and snap.read_bytes() == before
    assert len(list((sb.storage/BACKUP).iterdir())) == 1
    restore(home=fresh, platform=colab(sb))  # %persist -r forces it: home's copy to the backup folder
    assert not (fresh/'.local/bin/mine').exists() and list((sb.storage/BACKUP).glob('*/.local/bin/mine'))
    (fresh/'.local/bin/mine2').write_text('y')
    save('.local', home=fresh, platform=colab(sb))  # --save: the one way to replace the snapshot
    assert b'mine2' in subprocess.run(['tar', '-tf', str(snap)], capture_output=True).stdout

def test_an_empty_image_copy_is_replaced_without_a_backup(sb, tmp_path, monkeypatch):
    make_tree(sb.home/'.local', 5); archive_persist('.local', home=sb.home, platform=colab(sb))
    monkeypatch.setenv('PERSISTLAB_RUN', str(tmp_path/'run2'))
    fresh = sb.base/'fresh'; (fresh/'.local/share/jupyter/runtime').mkdir(parents=True)
    r = archive_persist('.local', home=fresh, platform=colab(sb))
    assert [x[1] for x in r if x[0] == '.local'][0] == 'restored' and not (sb.storage/BACKUP).exists()

def test_ssh_snapshot_restores_strict_modes(sb):
    s = sb.home/'.ssh'; s.mkdir(mode=0o755)
    for n, m in (('id_ed25519', 0o644), ('id_ed25519.pub', 0o666), ('config', 0o664), ('known_hosts', 0o600)):
        (s/n).write_text(n); os.chmod(s/n, m)
    os.chmod(s, 0o755)
    archive_persist('.ssh', home=sb.home, platform=colab(sb))
    assert mode(sb.storage/SNAPDIR/snapshot_name('.ssh')) == '0o600'
    fresh = sb.base/'fresh'; fresh.mkdir()
    restore(home=fresh, platform=colab(sb))
    f = fresh/'.ssh'
    assert [mode(f), mode(f/'id_ed25519'), mode(f/'id_ed25519.pub'), mode(f/'config'), mode(f/'known_hosts')] == \
           ['0o700', '0o600', '0o644', '0o600', '0o644']

def _bad(sb, how):
    "Persist .local and .ssh, then spoil the .local snapshot `how`"
    make_tree(sb.home/'.local', 10); (sb.home/'.ssh').mkdir(); (sb.home/'.ssh/id_ed25519').write_text('K')
    archive_persist(['.local', '.ssh'], home=sb.home, platform=colab(sb))
    snap = next((sb.storage/SNAPDIR).glob('.local@*'))
    work = sb.base/'evil'; work.mkdir()
    if how == 'truncated': snap.write_bytes(snap.read_bytes()[:len(snap.read_bytes()) // 2])
    elif how == 'garbage': snap.write_bytes(os.urandom(3000))
    elif how == 'empty': snap.write_bytes(b'')
    else:
        (work/'.local').mkdir()
        if how == 'slip': (work/'x').write_text('escaped'); args = ['--transform', 's,^x,../../escaped,', '-P', 'x', '.local']
        elif how == 'outside': (work/'.bashrc').write_text('evil'); args = ['.bashrc', '.local']
        elif how == 'symlink-top': os.rmdir(work/'.local'); os.symlink('/etc', work/'.local'); args = ['.local']
        subprocess.run(['tar', '-czf', str(snap), *args], cwd=work, check=True, capture_output=True)
    return snap

@pytest.mark.parametrize('how', ['truncated', 'garbage', 'empty', 'slip', 'outside', 'symlink-top'])
def test_bad_snapshot_is_one_line_and_the_others_restore(sb, how):
    snap = _bad(sb, how)
    fresh = sb.base/'fresh'; (fresh/'.local').mkdir(parents=True); (fresh/'.local/keep.txt').write_text('mine')
    r = restore(home=fresh, platform=colab(sb))
    bad = [x for x in r if x[1] == 'bad snapshot']
    assert len(bad) == 1 and bad[0][0] == '.local' and snap.name in bad[0][2] and '\n' not in bad[0][2], list(r)
    assert (fresh/'.ssh/id_ed25519').read_text() == 'K'  # the other snapshot restored
    assert (fresh/'.local/keep.txt').read_text() == 'mine' and not (fresh/'.local').is_symlink()  # home left as it was
    assert not (sb.base/'escaped').exists() and not (fresh/'escaped').exists() and not (fresh/'.bashrc').exists()
    assert not list(fresh.glob('.persistlab/tmp/*'))
    # the console script says it in one line too, no traceback
    r = sb.run(sys.executable, '-c', 'from persistlab.cli import restore_cli; restore_cli()', home=sb.base/'fresh2',
               PERSISTLAB_PLATFORM='colab', check=False)
    out = r.stdout + r.stderr
    assert 'Traceback' not in out and out.count('bad snapshot') == 1 and (sb.base/'fresh2/.ssh/id_ed25519').exists(), out

def test_kaggle_working_is_public_keys_refused_without_opt_in(replica):
    vm = replica('kaggle')
    vm.sh('mkdir -m 700 ~/.ssh && ssh-keygen -q -t ed25519 -N "" -f ~/.ssh/id_ed25519')
    c1, c2 = vm.run(['%load_ext persistlab\n%persist .local', '%persist .ssh'])
    assert c1.ok and "saved as this notebook's output" in c1.out, c1
    assert not c2.ok and 'Kaggle Secrets' in c2.error and not list((vm.working/'persistlab/snapshots').glob('.ssh.tar.*')), c2
    c3 = vm.run_cell('%load_ext persistlab\n%persist .ssh --allow-public')
    assert c3.ok and [mode(f) for f in (vm.working/'persistlab/snapshots').glob('.ssh.tar.*')] == ['0o600'], c3
    c4 = vm.run_cell('%load_ext persistlab\n%persist --save')  # refreshing what the user opted in to needs no second opt-in
    assert c4.ok and c4.out.count('saved') >= 2, c4
    c = vm.run_cell('from persistlab.secrets import save_secret\nsave_secret("NGROK_AUTHTOKEN", "t", "/kaggle/working/persistlab")')
    assert not c.ok and 'Kaggle Secrets' in c.error and not (vm.working/'persistlab/persistlab-secrets.json').exists()

def test_deepnote_storage_missing_says_nothing_about_drive(tmp_path):
    from persistlab.archive import autorestore as ar
    p = detect(env=dict(HOME=str(tmp_path), DEEPNOTE_PROJECT_ID='x', PERSISTLAB_STORAGE=str(tmp_path/'nowhere/.persistlab')), root='/nonexistent')
    msg = ar(p)
    assert 'nowhere' in msg and 'Drive' not in msg and 'drive' not in msg
    c = detect(env=dict(HOME=str(tmp_path), COLAB_RELEASE_TAG='x', PERSISTLAB_STORAGE=str(tmp_path/'drive/MyDrive/persistlab')))
    assert '%persist --mount' in ar(c)

ZSTD_TOOLS = ('zstd', 'unzstd', 'zstdcat', 'zstdmt', 'pzstd')

def _path_without_zstd(d) -> str:
    "A PATH with every program of this one but the zstd tools (links in folder `d`)"
    d.mkdir()
    for p in os.environ['PATH'].split(os.pathsep):
        if not os.path.isdir(p): continue
        for n in os.listdir(p):
            f = os.path.join(p, n)
            if n not in ZSTD_TOOLS and not (d/n).exists() and os.access(f, os.X_OK) and not os.path.isdir(f): os.symlink(f, d/n)
    return str(d)

def test_zstd_and_gzip_snapshots_restore_on_any_machine(sb):
    "Three machines share a Drive: one with the zstd program, one with only Python's zstandard (Colab), one with neither; "
    "each restores what the others saved where it can read it, and says what to install where it cannot"
    import shutil
    if not shutil.which('zstd'): pytest.skip('needs the zstd program: apt-get install zstd')
    pytest.importorskip('zstandard')
    nozstd = _path_without_zstd(sb.base/'bin')
    machines = dict(tool={}, module=dict(PATH=nozstd), none=dict(PATH=nozstd, BLOCK='1'))
    def on(m, vm, body, home):
        code = "import os, sys\nif os.environ.get('BLOCK'): sys.modules['zstandard'] = None  # import zstandard fails\n" + textwrap.dedent(body)
        return sb.py(code, home=home, COLAB_RELEASE_TAG='r', PERSISTLAB_PLATFORM='colab', PERSISTLAB_RUN=sb.base/f'run-{vm}', **machines[m])
    def fresh(n): (sb.base/n).mkdir(); return sb.base/n
    magic = lambda: {f.name: f.read_bytes()[:4] for f in (sb.storage/SNAPDIR).iterdir()}
    want = snapshot(make_tree(sb.home/'.local', 40))
    on('tool', 'a', "from persistlab.persist import persist; print(persist(['.local']))", sb.home)
    assert magic() == {snapshot_name('.local', f'{sys.version_info.major}.{sys.version_info.minor}', '.tar.zst'): b'\x28\xb5\x2f\xfd'}
    # zstandard alone reads it, and writes zstd too
    hm = fresh('m'); on('module', 'm', "from persistlab.persist import restore; print(restore())", hm)
    assert snapshot(hm/'.local') == want
    (hm/'.local/bin/from-module').write_text('m\n')
    on('module', 'm', "from persistlab.persist import save; print(save())", hm)
    assert list(magic().values()) == [b'\x28\xb5\x2f\xfd']
    # neither: the zstd snapshot is one row saying what to install, home stays as it is; a save there writes gzip
    hn = fresh('n'); (hn/'.local').mkdir(); (hn/'.local/mine').write_text('n\n')
    r = on('none', 'n', "from persistlab.persist import restore; print(restore())", hn)
    assert 'bad snapshot' in r.stdout and 'pip install zstandard' in r.stdout and 'apt-get install zstd' in r.stdout, r.stdout
    assert (hn/'.local/mine').read_text() == 'n\n' and not (hn/'.local/bin/tool').exists(), r.stdout
    on('none', 'n', "from persistlab.persist import save; print(save())", hn)
    (name, m), = magic().items()
    assert name.endswith('.tar.gz') and m[:2] == b'\x1f\x8b'  # the zstd one it replaced is gone
    assert [e['snapshot'] for e in read_manifest(sb.storage)['entries']] == [name]
    # and each machine restores the gzip one
    for m in machines:
        h = fresh(f'g-{m}'); on(m, f'g-{m}', "from persistlab.persist import restore; print(restore())", h)
        assert snapshot(h/'.local') == snapshot(hn/'.local'), m
