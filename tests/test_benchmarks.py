"""The benchmark scripts still run (their figures are not asserted: they are read, not tested)."""


def test_throughput_benchmark_runs_on_a_few_small_images(capsys):
    from benchmarks import throughput

    assert throughput.main(["--images", "3", "--size", "160"]) == 0
    printed = capsys.readouterr().out
    assert "bare compiled forward pass" in printed and printed.count("images/s") == 2
