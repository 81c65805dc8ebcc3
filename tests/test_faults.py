"Nothing lost, proven: SIGKILL at every step of a cross-filesystem move, a full disk, a read-only storage"
import os, stat, signal, subprocess, sys, time, json
from pathlib import Path
import pytest
from conftest import snapshot, make_tree, Sandbox
from persistlab.storage import TMP, HOME_TMP, BACKUP
from persistlab.core import OLD as _OLD

PERSIST = "from persistlab.persist import persist; print(persist(['.local']))"
RESTORE = "from persistlab.persist import restore; print(restore())"

@pytest.fixture
def xfs(shm_dir, tmp_path):
    "Home on tmpfs, storage on disk: every move is a real cross-filesystem copy"
    sb = Sandbox(tmp_path/'sb'); sb.home = shm_dir/'home'; sb.home.mkdir()
    return sb

def check_intact(sb, want):
    "Every original entry exists exactly once, same bytes and modes, and home resolves to it"
    h = sb.home/'.local'
    assert snapshot(h.resolve() if h.is_symlink() else h) == want
    assert not list(sb.home.glob('*' + _OLD)) and not list(sb.storage.glob('*' + _OLD))
    for d in (sb.storage/TMP, sb.home/HOME_TMP): assert not d.exists() or not any(d.iterdir())
    if h.is_symlink():  # no second copy of the data anywhere: not in home, not in a backup
        assert not (sb.storage/BACKUP).exists() or not any((sb.storage/BACKUP).iterdir())

@pytest.mark.parametrize('point', ['copied', 'renamed', 'set-aside', 'linked'])
@pytest.mark.parametrize('rerun', [PERSIST, RESTORE], ids=['persist', 'restore'])
def test_sigkill_at_each_step_then_rerun(xfs, point, rerun):
    sb = xfs; want = snapshot(make_tree(sb.home/'.local', 2000, big=2))
    r = sb.py(PERSIST, check=False, PERSISTLAB_FAILPOINT=point)
    assert r.returncode == -signal.SIGKILL, (r.stdout, r.stderr)
    r = sb.py(rerun, check=False)
    if rerun == RESTORE and point == 'copied':  # nothing reached storage: home keeps its data, restore says so
        assert r.returncode == 0 and not (sb.home/'.local').is_symlink()
    else: assert r.returncode == 0, r.stderr
    check_intact(sb, want)
    sb.py(PERSIST)  # and a persist after that finishes the job
    assert (sb.home/'.local').is_symlink(); check_intact(sb, want)

@pytest.mark.parametrize('delay', [0.05, 0.15, 0.3])
def test_sigkill_during_the_copy(xfs, delay):
    "A kernel killed mid-copy (in process, or its `cp -a`, which dies with it): nothing copies on, the next run starts clean"
    sb = xfs; want = snapshot(make_tree(sb.home/'.local', 6000, big=8))
    p = subprocess.Popen([sys.executable, '-c', PERSIST], env=sb.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(delay); p.kill(); p.wait(timeout=30)
    for _ in range(40):  # the kernel's death reaches its cp at once; give the process table a moment to show it
        ps = subprocess.run(['pgrep', '-f', f'cp -a .*{sb.home}/.local'], capture_output=True, text=True)  # one or several
        if not ps.stdout.strip(): break
        time.sleep(0.05)
    assert not ps.stdout.strip(), 'cp outlived the killed kernel'
    sb.py(PERSIST)
    check_intact(sb, want)
    assert (sb.home/'.local').is_symlink()

def test_big_tree_copied_in_process_comes_out_whole(xfs):
    "The copy runs in this process from the walk's stat results: folders and files keep modes and times, links their targets"
    sb = xfs; h = sb.home/'.local'; make_tree(h, 2500); site = h/'lib/python3.11/site-packages'
    os.utime(site, ns=(1, 10**18)); os.utime(h/'bin/tool', ns=(2, 10**17)); os.chmod(site, 0o555)  # read-only: finished last
    want, times = snapshot(h), {r: os.lstat(h/r).st_mtime_ns for r in ('lib/python3.11/site-packages', 'bin/tool', 'bin/tool-link')}
    sb.py(PERSIST)
    s = sb.storage/'.local'
    assert (sb.home/'.local').is_symlink() and snapshot(s) == want and {r: os.lstat(s/r).st_mtime_ns for r in times} == times
    os.chmod(s/'lib/python3.11/site-packages', 0o755)  # so that a non-root run can clean up

@pytest.mark.parametrize('odd', ['hard link', 'fifo'])
def test_what_the_copy_leaves_to_cp(xfs, odd):
    "A tree with hard links (conda's package cache) or a fifo is copied by `cp -a`: the links stay one file, the fifo a fifo"
    sb = xfs; h = sb.home/'.local'; make_tree(h, 500); far = 'lib/python3.11/site-packages/pkg0/x'
    if odd == 'fifo': os.mkfifo(h/far)
    else: os.link(h/'bin/tool', h/far)
    want = snapshot(h) if odd != 'fifo' else None
    sb.py(PERSIST)
    s = sb.storage/'.local'
    if odd == 'fifo': assert stat.S_ISFIFO(os.lstat(s/far).st_mode)
    else: assert os.lstat(s/'bin/tool').st_ino == os.lstat(s/far).st_ino and snapshot(s) == want

def test_same_filesystem_kill_after_rename(sb):
    want = snapshot(make_tree(sb.home/'.local', 100))
    r = sb.py(PERSIST, check=False, PERSISTLAB_FAILPOINT='moved')
    assert r.returncode == -signal.SIGKILL and not (sb.home/'.local').exists()
    sb.py(RESTORE)
    check_intact(sb, want); assert (sb.home/'.local').is_symlink()

def test_full_storage_fails_cleanly(tmpfs, tmp_path):
    sb = Sandbox(tmp_path/'sb'); sb.storage = tmpfs('full', '1m')
    want = snapshot(make_tree(sb.home/'.local', 20, big=2))  # 2 MB of data for 1 MB of storage
    r = sb.py(PERSIST, check=False)
    assert r.returncode == 1 and 'not enough space' in r.stderr.splitlines()[-1] and 'nothing changed' in r.stderr
    assert snapshot(sb.home/'.local') == want and not (sb.storage/'.local').exists()

def test_storage_filling_up_mid_copy_fails_cleanly(tmpfs, tmp_path):
    "Many small files: their bytes fit the free space, their blocks do not; cp fails half way"
    sb = Sandbox(tmp_path/'sb'); sb.storage = tmpfs('small', '1m')
    d = sb.home/'.local/many'; d.mkdir(parents=True)
    for i in range(600): (d/f'f{i}').write_bytes(b'x' * 200)
    want = snapshot(sb.home/'.local')
    r = sb.py(PERSIST, check=False)
    assert r.returncode == 1 and 'storage is full' in r.stderr and 'untouched' in r.stderr, r.stderr
    assert snapshot(sb.home/'.local') == want and not (sb.storage/'.local').exists()
    assert not any((sb.storage/TMP).iterdir())

def test_read_only_storage(tmpfs, tmp_path):
    sb = Sandbox(tmp_path/'sb'); sb.storage = tmpfs('ro', '4m')
    want = snapshot(make_tree(sb.home/'.local', 20))
    subprocess.run(['mount', '-o', 'remount,ro', str(sb.storage)], check=True)
    r = sb.py(PERSIST, check=False)
    assert r.returncode == 1 and 'not writable' in r.stderr
    assert snapshot(sb.home/'.local') == want and not (sb.home/'.local').is_symlink()

def test_two_kernels_one_storage_are_serialised(sb):
    "Two processes persisting different paths into one storage at once: both entries survive"
    for i in range(6): make_tree(sb.home/f'.p{i}', 200)
    procs = [subprocess.Popen([sys.executable, '-c', f"from persistlab.persist import persist; persist(['.p{i}'])"],
                              env=sb.env(), stderr=subprocess.PIPE) for i in range(6)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    m = json.loads((sb.storage/'persistlab.json').read_text())
    assert sorted(e['path'] for e in m['entries']) == [f'.p{i}' for i in range(6)]
    assert all((sb.home/f'.p{i}').is_symlink() for i in range(6))

def test_lock_waits_for_the_holder(sb):
    import fcntl
    (sb.home/'.local').mkdir()
    fd = os.open(sb.storage/'.persistlab.lock', os.O_RDWR | os.O_CREAT, 0o600); fcntl.flock(fd, fcntl.LOCK_EX)
    p = subprocess.Popen([sys.executable, '-c', PERSIST], env=sb.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert p.poll() is None and not (sb.home/'.local').is_symlink()  # waiting, nothing done
    os.close(fd)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and 'waiting for another kernel' in err and (sb.home/'.local').is_symlink()

def test_several_paths_kill_after_the_first_move(sb):
    "N paths are recorded in one manifest write before any moves: a kill after the first leaves the rest in home, a re-run finishes"
    want = {n: snapshot(make_tree(sb.home/n, 20)) for n in ('.a', '.b', '.c')}
    code = "from persistlab.persist import persist; print(persist(['.a', '.b', '.c']))"
    r = sb.py(code, check=False, PERSISTLAB_FAILPOINT='moved')
    assert r.returncode == -signal.SIGKILL, (r.stdout, r.stderr)
    m = json.loads((sb.storage/'persistlab.json').read_text())
    assert sorted(e['path'] for e in m['entries']) == ['.a', '.b', '.c']  # written once, before the first move
    assert not (sb.home/'.a').exists() and (sb.home/'.b').is_dir() and (sb.home/'.c').is_dir()
    sb.py(RESTORE)  # links .a back; .b and .c are not in storage yet and stay home's own
    assert (sb.home/'.a').is_symlink() and not (sb.home/'.b').is_symlink()
    sb.py(code)
    for n, w in want.items(): assert (sb.home/n).is_symlink() and snapshot((sb.home/n).resolve()) == w
    assert not (sb.storage/BACKUP).exists() or not any((sb.storage/BACKUP).iterdir())  # no second copy anywhere

UNDO = "from persistlab.persist import undo; print(undo('.local'))"

@pytest.mark.parametrize('boot', ['sh', 'python'])
def test_undo_killed_after_setting_storage_aside_then_a_fresh_instance(xfs, tmp_path, boot):
    "An undo killed right after setting storage's copy aside, then a new instance (home wiped): that copy is the only one; "
    "the boot's script or `%persist -r` puts it back and links it (it said 'not in storage, skipped' and left it orphaned)"
    sb = xfs; want = snapshot(make_tree(sb.home/'.local', 300))
    sb.py(PERSIST)
    r = sb.py(UNDO, check=False, PERSISTLAB_FAILPOINT='set-aside')
    assert r.returncode == -signal.SIGKILL and (sb.storage/('.local' + _OLD)).is_dir() and not (sb.storage/'.local').exists()
    fresh = tmp_path/'fresh'; fresh.mkdir()
    st = sb.py("from persistlab.persist import status; print(status())", home=fresh).stdout
    assert 'interrupted: its data is in' in st and '`%persist -r` puts it back' in st, st
    if boot == 'sh':
        r = subprocess.run(['sh', str(sb.storage/'persistlab-restore.sh')], env=dict(HOME=str(fresh), PATH='/usr/bin:/bin'), capture_output=True, text=True, cwd='/')
        assert r.returncode == 0 and 'put back the copy a run cut off had set aside' in r.stdout, r.stdout + r.stderr
    else:
        r = sb.py(RESTORE, home=fresh)
        assert "put .local.persistlab-old back" in r.stdout, r.stdout
    assert (fresh/'.local').is_symlink() and snapshot((fresh/'.local').resolve()) == want and not (sb.storage/('.local' + _OLD)).exists()
