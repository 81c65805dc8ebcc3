"A setup cell as users write it, run by a real kernel (nbclient): every magic's result shown once, help that helps"
import os
from pathlib import Path
import pytest
from conftest import ROOT

def run_cells(cells, env, timeout=120, kernel=os.environ.get('PERSISTLAB_TEST_KERNEL', 'python3')) -> list:
    "Execute `cells` in a fresh kernel with `env`, as a notebook does (an error does not stop the rest); each cell's outputs"
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=True).execute(env=env, cwd=env['HOME'])
    return [c.outputs for c in nb.cells]

def text(outs) -> str:
    "Everything a cell showed, as its plain text"
    return '\n'.join(o.get('text') or o.get('data', {}).get('text/plain') or o.get('evalue', '') for o in outs)

@pytest.fixture
def env(tmp_path):
    home, st = tmp_path/'home', tmp_path/'st'
    (home/'.local').mkdir(parents=True); st.mkdir()
    return {**os.environ, 'HOME': str(home), 'PERSISTLAB_PLATFORM': 'local', 'PERSISTLAB_STORAGE': str(st),
            'PERSISTLAB_RUNTIME': str(tmp_path/'run'), 'PYTHONPATH': str(ROOT), 'JUPYTER_PLATFORM_DIRS': '1'}

def test_every_magic_in_a_cell_shows_once_and_stays_a_value(env, tmp_path):
    outs = run_cells(['%load_ext persistlab',
                      '%persist .local\n%sshsetup --revoke-risk\nr = %tunnel --list\n%persist --list',
                      'r',
                      'l = %persist --list\nl',
                      'print(type(r).__name__, len(l), l[0][:2])'], env)
    cell = outs[1]
    assert [o['output_type'] for o in cell] == ['display_data'] * 4, cell
    assert 'linked' in text(cell[:1]) and text(cell[1:2]).startswith('persistlab: there was no --accept-risk') and 'nothing' in text(cell[2:3])
    assert text(cell[3:]).startswith('.local') and '| `.local` | linked' in cell[3]['data']['text/markdown']  # a table, once
    assert len(outs[2]) == 1 and '**tunnels**' in outs[2][0]['data']['text/markdown']  # a later cell shows the value
    assert len(outs[3]) == 1 and text(outs[3]).startswith('.local')  # assigned and shown in one cell: once
    assert text(outs[4]) == "Report 1 ('.local', 'linked')\n"
