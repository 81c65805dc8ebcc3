"""Random sequences of what users do, checked after every step: nothing the user wrote is ever lost.

A hypothesis state machine persists nested and parent paths, files and folders, on the same and on another
filesystem, undoes, restores, starts fresh instances that run only the generated script, edits files in home, and
kills persistlab with SIGKILL at a random failpoint before running the same command again. After every step:
every byte the user wrote is reachable from home or in a backup folder, no symlink points to itself or into a loop,
and `status()` (`%persist --list`) agrees with the disk."""
import os, sys, signal, shutil, tempfile, subprocess, itertools
from pathlib import Path
import pytest
from hypothesis import settings, strategies as st, HealthCheck
from hypothesis.stateful import RuleBasedStateMachine, rule, initialize, invariant, precondition
from persistlab.platforms import detect
from persistlab.core import PersistlabError, loops
from persistlab.persist import persist, restore, status, undo
from persistlab.storage import BACKUP, SCRIPT, TMP, read_manifest, valid_entries

EXAMPLES = int(os.environ.get('PERSISTLAB_STATEFUL_EXAMPLES', '300'))
PATHS = ['.local', '.local/share/jupyter', '.ssh', '.config', '.gitconfig', '.cache/pip']
FILES = {'.gitconfig'}
FAILPOINTS = ['copied', 'renamed', 'set-aside', 'linked', 'moved']

def _contents(root, follow):
    "Contents of every regular file under `root` (following links into other folders only when `follow`), loop-safe"
    out, seen = set(), set()
    for d, dirs, files in os.walk(root, followlinks=follow):
        rp = os.path.realpath(d)
        if rp in seen: dirs[:] = []; continue
        seen.add(rp)
        for f in files:
            p = os.path.join(d, f)
            if os.path.isfile(p):
                try: out.add(Path(p).read_text(errors='replace'))
                except OSError: pass
    return out

class Journeys(RuleBasedStateMachine):
    @initialize(cross=st.booleans(), hook=st.booleans())
    def setup(self, cross, hook):
        self.base = Path(tempfile.mkdtemp(prefix='pl-stateful-'))
        self.shm = Path(tempfile.mkdtemp(dir='/dev/shm', prefix='pl-stateful-')) if cross else None
        self.storage = (self.shm or self.base)/'storage'; self.storage.mkdir()
        self.hook = self.base/'pre-run.sh' if hook else None
        # one counter per run, so a replayed example names the same homes and tokens (a module-wide counter made the
        # first fresh home `home0` collide with this one only on the first run, which hypothesis reported as flaky)
        self.n = itertools.count(1)
        self.home = self.base/'home0'; self.home.mkdir()
        self.expect = {}  # token -> where the user wrote it (for messages)
        self.last = {}    # home-relative file -> the token last written there

    def teardown(self):
        shutil.rmtree(self.base, ignore_errors=True)
        if self.shm: shutil.rmtree(self.shm, ignore_errors=True)

    def pl(self):
        env = dict(HOME=str(self.home), PERSISTLAB_PLATFORM='paperspace' if self.hook else 'local', PERSISTLAB_STORAGE=str(self.storage))
        if self.hook: env['PERSISTLAB_HOOK'] = str(self.hook)
        return detect(env=env)

    def tolerate(self, f, *a, **k):
        "Run a persistlab call; its refusals are fine (they changed nothing), anything else is a bug"
        try: return f(*a, **k)
        except PersistlabError: return None

    # ---- what users do
    @rule(path=st.sampled_from(PATHS), name=st.sampled_from(['a', 'b', 'sub/c']))
    def write(self, path, name):
        rel = path if path in FILES else f'{path}/{name}'
        p = self.home/rel
        tok = f'token-{next(self.n)} ({rel})'
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            if p.is_dir() and not p.is_symlink(): return
            p.write_text(tok)
        except OSError: return  # a file where a folder should be: the user sees the error too
        old = self.last.get(rel)
        if old: self.expect.pop(old, None)  # overwritten by the user
        self.expect[tok] = rel; self.last[rel] = tok

    @rule(path=st.sampled_from(PATHS), name=st.sampled_from(['a', 'b']))
    def write_then_persist(self, path, name):
        "The everyday pattern: change something, run the cell again"
        self.write(path, name); self.tolerate(persist, [path], home=self.home, platform=self.pl())

    @rule(paths=st.lists(st.sampled_from(PATHS), min_size=1, max_size=2, unique=True), merge=st.booleans(), force=st.booleans(), create=st.booleans())
    def do_persist(self, paths, merge, force, create):
        self.tolerate(persist, paths, home=self.home, platform=self.pl(), merge=merge, force=force, create=create)

    @rule(path=st.sampled_from(PATHS))
    def do_undo(self, path): self.tolerate(undo, path, home=self.home, platform=self.pl())

    @rule()
    def do_restore(self): self.tolerate(restore, home=self.home, platform=self.pl())

    @rule()
    def fresh_instance(self):
        "A new VM: an empty home, restored by the generated script alone (what the startup hook runs)"
        if not (self.storage/SCRIPT).exists(): return
        kept = _contents(self.storage/BACKUP, False) if (self.storage/BACKUP).is_dir() else set()
        for e in valid_entries(read_manifest(self.storage)):
            s = self.storage/e['path']
            if s.is_file(): kept.add(s.read_text(errors='replace'))
            elif s.is_dir(): kept |= _contents(s, False)
        self.expect = {t: w for t, w in self.expect.items() if t in kept}  # the rest lived only on the old VM
        self.home = self.base/f'home{next(self.n)}'; self.home.mkdir()
        r = subprocess.run(['sh', str(self.storage/SCRIPT)], env=dict(HOME=str(self.home), PATH='/usr/bin:/bin'), capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr

    @rule(point=st.sampled_from(FAILPOINTS), paths=st.lists(st.sampled_from(PATHS), min_size=1, max_size=2, unique=True),
          op=st.sampled_from(['persist', 'undo', 'restore']))
    def killed_then_rerun(self, point, paths, op):
        "SIGKILL at a failpoint in a forked persistlab, then the user runs the same command again"
        call = dict(persist=lambda: persist(paths, home=self.home, platform=self.pl()),
                    undo=lambda: undo(paths[0], home=self.home, platform=self.pl()),
                    restore=lambda: restore(home=self.home, platform=self.pl()))[op]
        pid = os.fork()
        if pid == 0:
            os.environ['PERSISTLAB_FAILPOINT'] = point
            try: call()
            except BaseException: pass
            os._exit(0)
        os.waitpid(pid, 0)
        if self.tolerate(call) is not None:  # the re-run went through: it finished or undid the interrupted one
            left = [p for r in (self.home, self.storage) for p in r.rglob('*.persistlab-old')]
            left += list((self.storage/TMP).iterdir()) if (self.storage/TMP).is_dir() else []
            assert not left, f'left behind after the re-run: {left}'

    # ---- what must hold after every step
    @invariant()
    def nothing_lost(self):
        if not hasattr(self, 'home'): return
        reach = _contents(self.home, True)
        if (self.storage/BACKUP).is_dir(): reach |= _contents(self.storage/BACKUP, False)
        lost = [f'{t}' for t in self.expect if t not in reach]
        assert not lost, f'lost: {lost}'

    @invariant()
    def no_link_loops(self):
        if not hasattr(self, 'home'): return
        for root in (self.home, self.storage):
            for d, dirs, files in os.walk(root):
                for n in dirs + files:
                    p = Path(d)/n
                    if p.is_symlink():
                        assert not loops(p), f'{p} -> {os.readlink(p)} loops'
                        assert not Path(os.path.realpath(p)) == Path(os.path.realpath(p.parent))/n, f'{p} points to itself'

    @invariant()
    def list_agrees_with_disk(self):
        if not hasattr(self, 'home') or not (self.storage/'persistlab.json').exists(): return
        for r in status(home=self.home, platform=self.pl()):
            h, s = self.home/r.path, self.storage/r.path
            assert not r.what.startswith(('lost', 'broken', 'skipped')), r
            if r.what == 'linked': assert os.readlink(h) == str(s) and s.exists() and not s.is_symlink(), r
            elif r.what == 'copied': assert h.is_dir() and not h.is_symlink(), r
            elif r.what.startswith('missing'): assert not os.path.lexists(h), r
        assert not (self.storage/TMP).is_symlink()

Journeys.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=12, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

@pytest.mark.skipif(not os.access('/dev/shm', os.W_OK), reason='needs /dev/shm (tmpfs) as a second filesystem')
class TestJourneys(Journeys.TestCase): pass
