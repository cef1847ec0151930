"settings.ini reaches drnb.core, environment variables override it, a bad value names its key."
import os, subprocess, sys, textwrap
from pathlib import Path
import pytest
from drnb.core import load_settings, get_settings, SettingsError, find_settings

ROOT = Path(__file__).resolve().parent.parent

def test_project_settings_file_is_found_and_read():
    p = find_settings(start=ROOT/'tests', env={})
    assert p == ROOT/'settings.ini'
    s = load_settings(p, env={})
    assert s.sources['image_size'] == 'settings.ini'
    assert s.idrid_boxes_path == (ROOT/'../shared/data/idrid_boxes').resolve()

def test_env_overrides_in_a_fresh_process(tmp_path):
    (tmp_path/'settings.ini').write_text("[drnb]\nimage_size = 200\nbatch_size = 8\n")
    code = "from drnb.core import get_settings as g; s=g(); print(s.image_size, s.batch_size, s.path)"
    env = {**os.environ, 'DRNB_BATCH_SIZE': '4'}
    env.pop('DRNB_SETTINGS', None)
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ['200', '4'] and Path(out[2]) == tmp_path/'settings.ini'

@pytest.mark.parametrize('key,value', [('image_size', 'large'), ('num_workers', '-2'), ('device', 'tpu'), ('runs_path', '')])
def test_bad_value_names_the_key(tmp_path, key, value):
    (tmp_path/'settings.ini').write_text(f"[drnb]\n{key} = {value}\n")
    with pytest.raises(SettingsError, match=f"'{key}'"): load_settings(tmp_path/'settings.ini', env={})
    with pytest.raises(SettingsError, match=f"DRNB_{key.upper()}"):
        load_settings(tmp_path/'settings.ini', env={f'DRNB_{key.upper()}': value or ' '})

def test_settings_env_var_names_the_file(tmp_path):
    with pytest.raises(SettingsError, match='DRNB_SETTINGS'): find_settings(env={'DRNB_SETTINGS': str(tmp_path/'nope.ini')})
