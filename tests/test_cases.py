"Every case of `persist` with the link strategy, on real files (issue 2, section 3)"
import os, json, stat, subprocess
from pathlib import Path
import pytest
from conftest import snapshot, make_tree
from persistlab.platforms import detect
from persistlab.persist import persist, restore, status, undo, PersistError
from persistlab.storage import MANIFEST, SCRIPT, BACKUP, read_manifest

def plat(sb, name='local', hook=None):
    env = dict(HOME=str(sb.home), PERSISTLAB_PLATFORM=name, PERSISTLAB_STORAGE=str(sb.storage))
    if hook: env['PERSISTLAB_HOOK'] = str(hook)
    return detect(env=env)

def go(sb, paths, **kw): return persist(paths, home=sb.home, platform=plat(sb, hook=kw.pop('hook', None)), **kw)
def what(rep, path): return [r[1] for r in rep if r[0] == path]

def test_only_home_moves_and_links(sb):
    want = snapshot(make_tree(sb.home/'.local'))
    r = go(sb, '.local')
    assert what(r, '.local')[:2] == ['moved', 'linked']
    assert os.readlink(sb.home/'.local') == str(sb.storage/'.local')
    assert snapshot(sb.storage/'.local') == want
    m = json.loads((sb.storage/MANIFEST).read_text())
    assert m['entries'][0]['path'] == '.local' and m['entries'][0]['strategy'] == 'link' and m['entries'][0]['python']
    assert (sb.storage/SCRIPT).stat().st_mode & 0o111

def test_file_and_absolute_and_tilde_paths(sb):
    (sb.home/'.gitconfig').write_text('[user]\n'); (sb.home/'.config/git').mkdir(parents=True)
    go(sb, ['~/.gitconfig', str(sb.home/'.config/git')])
    assert (sb.home/'.gitconfig').is_symlink() and (sb.home/'.gitconfig').read_text() == '[user]\n'
    assert os.readlink(sb.home/'.config/git') == str(sb.storage/'.config/git')

def test_only_storage_links_fresh_instance_and_adopts_existing_layout(sb):
    # the fast.ai walkthrough's /storage/cfg/.local, made by hand before persistlab
    want = snapshot(make_tree(sb.storage/'.local'))
    r = go(sb, '.local')
    assert what(r, '.local') == ['linked']
    assert snapshot(sb.storage/'.local') == want and (sb.home/'.local').resolve() == sb.storage/'.local'

def test_both_storage_wins_home_backed_up(sb):
    (sb.home/'.local').mkdir(); (sb.home/'.local/mine').write_text('home')
    (sb.storage/'.local').mkdir(); (sb.storage/'.local/mine').write_text('storage')
    r = go(sb, '.local')
    assert 'backed up' in what(r, '.local')
    (b,) = (sb.storage/BACKUP).glob('*/.local')
    assert (b/'mine').read_text() == 'home' and (sb.home/'.local/mine').read_text() == 'storage'

def test_both_merge_copies_what_storage_lacks(sb):
    (sb.home/'.local/a').mkdir(parents=True); (sb.home/'.local/a/x').write_text('home-only')
    (sb.home/'.local/same').write_text('home')
    (sb.storage/'.local').mkdir(); (sb.storage/'.local/same').write_text('storage')
    r = go(sb, '.local', merge=True)
    assert 'merged' in what(r, '.local')
    assert (sb.home/'.local/a/x').read_text() == 'home-only' and (sb.home/'.local/same').read_text() == 'storage'
    (b,) = (sb.storage/BACKUP).glob('*/.local'); assert (b/'same').read_text() == 'home'

def test_already_linked_is_a_noop(sb):
    make_tree(sb.home/'.local'); go(sb, '.local')
    before = snapshot(sb.storage)
    r = go(sb, '.local')
    assert what(r, '.local') == ['already persisted']
    assert snapshot(sb.storage) == before

@pytest.mark.parametrize('kind', ['elsewhere', 'dangling'])
def test_symlink_in_home_refused_then_forced_with_backup(sb, kind, tmp_path):
    tgt = tmp_path/'elsewhere'
    if kind == 'elsewhere': tgt.mkdir(); (tgt/'f').write_text('x')
    os.symlink(tgt, sb.home/'.local')
    with pytest.raises(PersistError, match='points nowhere' if kind == 'dangling' else 'symlink to'): go(sb, '.local')
    assert os.readlink(sb.home/'.local') == str(tgt) and not (sb.storage/'.local').exists()
    (sb.storage/'.local').mkdir()
    r = go(sb, '.local', force=True)
    (b,) = [d/'.local' for d in (sb.storage/BACKUP).iterdir()]  # glob skips dangling links
    assert os.readlink(b) == str(tgt) and (sb.home/'.local').resolve() == sb.storage/'.local'
    if kind == 'elsewhere': assert (tgt/'f').read_text() == 'x'  # the link's target is untouched

def test_file_where_storage_has_dir(sb):
    (sb.home/'.local').write_text('a file'); (sb.storage/'.local').mkdir()
    with pytest.raises(PersistError, match='is a file but storage has a dir'): go(sb, '.local')
    assert (sb.home/'.local').read_text() == 'a file'
    go(sb, '.local', force=True)
    (b,) = (sb.storage/BACKUP).glob('*/.local'); assert b.read_text() == 'a file'

def test_neither_exists(sb):
    r = go(sb, '.cache')
    assert what(r, '.cache') == ['skipped'] and '--create' in r[0].detail and read_manifest(sb.storage)['entries'] == []
    r = go(sb, '.cache', create=True)
    assert (sb.storage/'.cache').is_dir() and (sb.home/'.cache').is_symlink() and 'created' in what(r, '.cache')

def test_ssh_is_copied_with_modes(sb):
    s = sb.home/'.ssh'; s.mkdir(mode=0o775)
    for n in ('id_ed25519', 'authorized_keys', 'config'): (s/n).write_text(n); os.chmod(s/n, 0o664)
    (s/'id_ed25519.pub').write_text('pub'); os.chmod(s/'id_ed25519.pub', 0o600)
    r = go(sb, '.ssh')
    assert not s.is_symlink() and (sb.storage/'.ssh/id_ed25519').read_text() == 'id_ed25519'
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)
    for d in (s, sb.storage/'.ssh'):
        assert mode(d) == 0o700 and mode(d/'id_ed25519.pub') == 0o644
        assert all(mode(d/n) == 0o600 for n in ('id_ed25519', 'authorized_keys', 'config'))
    assert 'modes fixed' in what(r, '.ssh')
    assert read_manifest(sb.storage)['entries'][0]['strategy'] == 'copy'

def test_handmade_ssh_link_into_storage_is_kept_with_strict_modes(sb):
    # fast.ai's pre-run.sh links ~/.ssh to storage: keep that, so a key or known_hosts added later is in storage at once
    (sb.storage/'.ssh').mkdir(mode=0o755); (sb.storage/'.ssh/id_rsa').write_text('k'); os.chmod(sb.storage/'.ssh/id_rsa', 0o644)
    os.symlink(sb.storage/'.ssh', sb.home/'.ssh')
    go(sb, '.ssh')
    assert os.readlink(sb.home/'.ssh') == str(sb.storage/'.ssh') and (sb.home/'.ssh/id_rsa').read_text() == 'k'
    assert stat.S_IMODE((sb.storage/'.ssh/id_rsa').stat().st_mode) == 0o600 and stat.S_IMODE((sb.storage/'.ssh').stat().st_mode) == 0o700
    (sb.home/'.ssh/known_hosts').write_text('added later')
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = subprocess.run(['sh', str(sb.storage/SCRIPT)], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True)
    assert r.returncode == 0 and (fresh/'.ssh/known_hosts').read_text() == 'added later' and not (sb.storage/BACKUP).exists()

def test_jupyter_runtime_stays_usable_and_local_with_the_hook(sb):
    rt = sb.home/'.local/share/jupyter/runtime'; rt.mkdir(parents=True)
    (rt/'kernel-abc.json').write_text('{"key": "k"}')
    hook = sb.storage.parent/'pre-run.sh'
    go(sb, '.local', hook=hook)
    # the live kernel's file is still where Jupyter looks, and storage holds a plain folder (never a dangling link)
    assert (sb.home/'.local/share/jupyter/runtime/kernel-abc.json').read_text() == '{"key": "k"}'
    assert (sb.storage/'.local/share/jupyter/runtime').is_dir() and not (sb.storage/'.local/share/jupyter/runtime').is_symlink()
    # a fresh instance that sources the hook keeps a live Jupyter's files on the machine
    fresh = sb.base/'fresh'; fresh.mkdir()
    r = subprocess.run(['bash', '-c', f'source {hook}; echo "RT=$JUPYTER_RUNTIME_DIR"'], env=dict(PATH='/usr/bin:/bin', HOME=str(fresh)),
                       capture_output=True, text=True)
    assert f'RT={fresh}/.persistlab/jupyter-runtime' in r.stdout, r.stdout + r.stderr

def test_an_older_runtime_link_in_storage_becomes_a_folder(sb):
    (sb.home/'.local/share/jupyter').mkdir(parents=True); go(sb, '.local')
    rt = sb.storage/'.local/share/jupyter/runtime'; rt.rmdir() if rt.is_dir() else None
    os.symlink(sb.home/'.persistlab/jupyter-runtime', rt)  # what persistlab 0.0.1 made: dangling on a fresh instance
    go(sb, '.local')
    assert rt.is_dir() and not rt.is_symlink()

def test_paperspace_hook_block_kept_and_updated(sb):
    hook = sb.storage.parent/'pre-run.sh'
    hook.write_text('#!/usr/bin/env bash\ncd\nrm -rf .cache\n')
    (sb.home/'.local').mkdir(); go(sb, '.local', hook=hook)
    (sb.home/'.ipython').mkdir(); go(sb, '.ipython', hook=hook)
    t = hook.read_text()
    assert t.startswith('#!/usr/bin/env bash\ncd\nrm -rf .cache\n') and t.count('# >>> persistlab >>>') == 1
    assert os.access(hook, os.X_OK)

def test_path_outside_home_and_home_itself(sb):
    for p, msg in (('/etc/hosts', 'not under your home'), ('~', 'whole home'), ('../x', 'not under your home')):
        with pytest.raises(PersistError, match=msg): go(sb, p)

def test_storage_inside_persisted_path(sb):
    (sb.home/'data').mkdir()
    with pytest.raises(PersistError, match='inside'):
        persist('data', to=sb.home/'data/keep', home=sb.home, platform=plat(sb))

def test_storage_missing_or_not_writable(sb, tmp_path):
    with pytest.raises(PersistError, match='is it mounted'):
        persist('.local', to=tmp_path/'nope/storage', home=sb.home, platform=plat(sb))
    f = tmp_path/'afile'; f.write_text('')
    with pytest.raises(PersistError, match='not a directory'):
        persist('.local', to=f, home=sb.home, platform=plat(sb))

def test_list_states(sb):
    make_tree(sb.home/'.local', 5); go(sb, '.local')
    (sb.home/'.ssh').mkdir(); go(sb, '.ssh')
    (sb.home/'.ipython').mkdir(); (sb.home/'.ipython/x').write_text('1'); go(sb, '.ipython')
    st = lambda: {r[0]: r[1] for r in status(home=sb.home, platform=plat(sb))}
    assert st() == {'.local': 'linked', '.ssh': 'copied', '.ipython': 'linked'}
    os.unlink(sb.home/'.ipython'); (sb.home/'.ipython').mkdir()
    (sb.home/'.ssh/new').write_text('k')
    os.unlink(sb.home/'.local')
    s = st()
    assert s['.local'].startswith('missing') and s['.ipython'].startswith('conflict') and s['.ssh'].startswith('differs')

def test_undo_brings_data_home_and_drops_entry(sb):
    want = snapshot(make_tree(sb.home/'.local', 20))
    go(sb, '.local')
    r = undo('.local', home=sb.home, platform=plat(sb))
    assert not (sb.home/'.local').is_symlink() and snapshot(sb.home/'.local') == want
    assert read_manifest(sb.storage)['entries'] == [] and "'.local'" not in (sb.storage/SCRIPT).read_text()
    with pytest.raises(PersistError, match='not persisted'): undo('.local', home=sb.home, platform=plat(sb))

def test_undo_restores_jupyter_runtime_dir(sb):
    rt = sb.home/'.local/share/jupyter/runtime'; rt.mkdir(parents=True); (rt/'k.json').write_text('1')
    go(sb, '.local'); undo('.local', home=sb.home, platform=plat(sb))
    assert (rt/'k.json').read_text() == '1' and not rt.is_symlink()

def test_platforms_without_link_strategy_say_so(sb):
    for name, msg in (('jupyterhub', 'already persists'), ('binder', 'nothing persists'), ('colab', 'drive.mount')):
        with pytest.raises(PersistError, match=msg):
            persist('.local', home=sb.home, platform=detect(env=dict(HOME=str(sb.home), PERSISTLAB_PLATFORM=name)))

def test_one_bad_path_does_not_stop_the_others(sb):
    (sb.home/'.local').mkdir(); os.symlink('/nowhere', sb.home/'.elsewhere')
    with pytest.raises(PersistError, match=r'\.elsewhere.*done meanwhile: \.local'): go(sb, ['.elsewhere', '.local'])

def test_a_path_that_exists_nowhere_is_skipped_and_the_rest_goes_on(sb):
    (sb.home/'.local').mkdir()
    r = go(sb, ['.local', '.nothing', '.gitconfig'])
    assert [x.what for x in r if x.path in ('.nothing', '.gitconfig')] == ['skipped', 'skipped']
    assert (sb.home/'.local').is_symlink() and [e['path'] for e in read_manifest(sb.storage)['entries']] == ['.local']

def test_create_makes_a_file_for_file_names(sb):
    go(sb, '.gitconfig', create=True)
    assert (sb.storage/'.gitconfig').is_file() and os.readlink(sb.home/'.gitconfig') == str(sb.storage/'.gitconfig')
    r = subprocess.run(['git', 'config', '--file', str(sb.home/'.gitconfig'), 'user.name', 'Ada Lovelace'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_list_before_the_first_persist_on_the_platform_disk(sb, tmp_path):
    "A fresh Paperspace: /storage is there, /storage/cfg is made by the first persist; looking says nothing yet, not 'is it mounted?'"
    from persistlab.storage import Storage
    from persistlab.persist import status
    disk = tmp_path/'storage'; disk.mkdir(exist_ok=True)
    r = status(Storage(disk/'cfg', 'platform default'), home=sb.home, platform=plat(sb))
    assert len(r) == 0 and 'made at the first persist' in r.title and not (disk/'cfg').exists()
    with pytest.raises(PersistError, match='does not exist, so nothing is persisted there'):  # a folder the user named: a typo is said
        status(Storage(disk/'cfgg', '--to'), home=sb.home, platform=plat(sb))
    with pytest.raises(PersistError, match='is it mounted'):  # the platform's disk itself missing: still said
        status(Storage(tmp_path/'nodisk/cfg', 'platform default'), home=sb.home, platform=plat(sb))
