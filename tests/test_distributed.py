"`drnb train` under torchrun: two CPU processes (gloo) train every registered method on halves of the data and end with equal replicas."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from drnb.methods import method_names

def test_one_two_process_launch_trains_every_method_with_equal_replicas(tmp_path):
    torchrun = Path(sys.executable).parent/'torchrun'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'DRNB_DEVICE': 'cpu'}
    methods = method_names()
    cmd = [str(torchrun), '--nproc_per_node', '2', '--master_port', '29531', '-m', 'drnb.cli', 'train', '-p', 'method', ','.join(methods),
           '-p', 'dataset', 'synthetic:tiny', '-p', 'image_size', '64', '-p', 'epochs', '1', '-p', 'batch_size', '8', '--out', str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for m in methods:
        ranks = [json.loads((tmp_path/m/f'rank{i}.json').read_text()) for i in range(2)]
        assert [x['world_size'] for x in ranks] == [2, 2], m
        assert ranks[0]['checksum'] == ranks[1]['checksum'], f"{m}: the replicas differ"
        for x in ranks:                             # each rank ran about half of what one process runs alone
            assert x['train_batches'] > 0, m
            # Zoom-in-Net's stage A is a number of optimiser steps (a_steps), not a share of the data: only epoch-based fits halve
            if m != 'zoomin': assert x['train_batches'] <= (x['single_process_batches'] + 1)//2, m
        assert (tmp_path/m/'model.pth').exists() and json.loads((tmp_path/m/'run.json').read_text())['method'] == m
