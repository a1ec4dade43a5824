"""SIGTERM (a scheduler's stop) handled as Ctrl-C, by the CLI as a user runs it."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from nuclei_app.interrupts import sigterm_as_interrupt

from .conftest import PROJECT, SAMPLES


def test_sigterm_raises_keyboard_interrupt_inside_the_block_only():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)   # the handler runs at once; this is never reached in full
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_block_wise_run_stopped_by_sigterm_cleans_up_and_says_how_to_go_on(tmp_path):
    """A user test: `timeout` (SIGTERM) left a 200 MB scratch folder in the output folder."""
    from nuclei_app.imageio import read_image, to_uint8

    field = to_uint8(read_image(SAMPLES / "images" / "fluorescence_dense.png"))
    tifffile.imwrite(tmp_path / "mosaic.tif", np.tile(field, (6, 6) + (1,) * (field.ndim - 2)), tile=(256, 256))
    # The CLI, with this TIFF taken as huge (read lazily, its labels in a scratch file).
    cli = ("import sys; from nuclei_app import batch; batch.is_huge = lambda path: True; "
           "from nuclei_app.__main__ import main; sys.exit(main(sys.argv[1:]))")
    process = subprocess.Popen([sys.executable, "-c", cli, "segment", str(tmp_path / "mosaic.tif"), "--out",
                                str(tmp_path / "out"), "--block-size", "256", "--formats", "tiff"],
                               cwd=PROJECT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not list((tmp_path / "out").glob(".nuclei_blocks_*")) and time.time() < deadline:
        time.sleep(0.2)   # stopped once its scratch folder exists: mid-run
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=120)[1]
    assert process.returncode == 143, err   # 128 + SIGTERM: a scheduler's stop, told from Ctrl-C's 130
    assert "interrupted:" in err and "--skip-existing" in err and "Traceback" not in err
    assert not list((tmp_path / "out").glob(".nuclei_blocks_*"))
