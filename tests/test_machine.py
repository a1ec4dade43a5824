from nuclei_app.machine import core_count, cpu_flags, cpu_name, describe_machine

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
