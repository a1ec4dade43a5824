import sys

import pytest

from nuclei_app import machine
from nuclei_app.machine import core_count, cpu_flags, cpu_name, describe_machine, onednn_by_default

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu avx512f avx512_bf16
processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu avx512f avx512_bf16
"""


def test_cpuinfo_fields_are_read_per_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert cpu_name(path) == "AMD EPYC 9R14"
    assert cpu_flags(path) == {"fpu", "avx512f", "avx512_bf16"}


def test_no_cpuinfo_still_names_something(tmp_path):
    assert cpu_flags(tmp_path / "none") == set()
    assert cpu_name(tmp_path / "none")  # platform's answer, or "unknown processor"


def test_the_description_names_processor_and_cores():
    text = describe_machine()
    assert text.endswith(f", {core_count()} CPU cores") and cpu_name() in text
    assert core_count() >= 1


def test_onednn_is_tensorflows_default_only_on_processors_with_vnni_bf16_or_amx(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert onednn_by_default(path)
    path.write_text(CPUINFO.replace("avx512f avx512_bf16", "avx2 fma"))  # an AVX2-only EPYC
    assert not onednn_by_default(path)
    path.write_text(CPUINFO.replace("avx512f avx512_bf16", "avx2 amx_tile"))
    assert onednn_by_default(path)


def test_tensorflow_says_whether_it_runs_onednn_and_agrees_with_the_rule():
    import os

    pytest.importorskip("tensorflow")
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower()
    rule = setting in ("1", "true") or (setting not in ("0", "false") and onednn_by_default())
    assert machine.tensorflow_runs_onednn() == rule


@pytest.mark.parametrize("setting, flags, expected", [("0", "amx_tile", False), ("1", "avx2", True),
                                                      (None, "avx512_vnni", True), (None, "avx2", False)])
def test_without_tensorflows_answer_the_variable_and_processor_decide(monkeypatch, setting, flags, expected):
    monkeypatch.setattr(machine, "cpu_flags", lambda cpuinfo=None: {"fpu", flags})
    monkeypatch.setitem(sys.modules, "tensorflow.python.util._pywrap_util_port", None)  # import fails
    if setting is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", setting)
    assert machine.tensorflow_runs_onednn() is expected
