"""The benchmark scripts still run (their figures are not asserted: they are read, not tested)."""


def test_throughput_benchmark_runs_on_a_few_small_images(capsys):
    from benchmarks import throughput
    from nuclei_app import xnnpack
    from nuclei_app.precision import cpu_has_bf16

    assert throughput.main(["--images", "3", "--size", "160"]) == 0
    printed = capsys.readouterr().out
    # Four rows in float32 (three on the CLI's default kernels, one on the others); two more in
    # bfloat16 where the CPU has it (and says so where not); two in int8 everywhere.
    default, other = ("XNNPACK", "TensorFlow") if xnnpack.preferred_here() else ("TensorFlow", "XNNPACK")
    assert f"bare forward pass, CLI default ({default} kernels)" in printed
    assert f"bare compiled forward pass, {other} kernels" in printed
    assert f"--engine {other.lower()}, given" in printed
    assert printed.count("images/s") == (8 if cpu_has_bf16() else 6)
    assert "int8, diameter given" in printed and "bare forward pass in int8 (XNNPACK kernels)" in printed
    assert printed.count("ms of CPU per image") == printed.count("images/s")
    assert "given, --formats tiff" in printed
    assert ("bfloat16, diameter given" in printed) == cpu_has_bf16()


def test_noise_floor_benchmark_runs_on_the_samples(capsys):
    from benchmarks import noise_floor
    from train.locations import SAMPLES_DATA_DIR

    assert noise_floor.main(["--data", str(SAMPLES_DATA_DIR), "--side", "256"]) == 0
    printed = capsys.readouterr().out
    assert "stretch changed by the floor: 0 []" in printed and "light/dark unlike the camera-range rule: 0" in printed
    assert "4 nuclei, 10x the noise" in printed
    (empty,) = [line.split() for line in printed.splitlines() if line.startswith("empty ")]
    assert empty[1] == "0"   # nothing found in an empty field with the floor


def test_stage_profile_names_every_stage_of_a_batch_image(capsys):
    from benchmarks import stages

    assert stages.main(["--images", "2", "--size", "160"]) == 0
    printed = capsys.readouterr().out
    for stage in ("read file", "network", "watershed", "measure + overlay + encode", "write files",
                  "CPU around the network"):
        assert stage in printed


def test_engine_benchmark_compares_both_kernels_on_the_same_inputs(capsys):
    from benchmarks import engines

    assert engines.main(["--repeats", "1", "--sizes", "32", "--labels", "1"]) == 0
    printed = capsys.readouterr().out
    assert "labels on 1 training images" in printed or "no training set" in printed
    rows = [line for line in printed.splitlines() if "largest difference" in line]
    assert [row.split()[0] for row in rows] == ["1x32x32x3", "4x32x32x3"]
    assert all("tensorflow" in row and "xnnpack/1" in row for row in rows)
    assert all(float(row.rsplit(" ", 1)[1]) < 1e-4 for row in rows)


def test_engine_memory_runs_each_kernel_in_its_own_process(capsys):
    from benchmarks import engines

    assert engines.main(["--memory", "--sizes", "32"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "peak RSS" in line]
    assert [row.split()[0] for row in rows] == ["tensorflow", "xnnpack"] * 2


def test_cpu_kernel_benchmark_runs_each_setting_in_its_own_process(capsys):
    from benchmarks.cpu_kernels import main

    assert main(["--steps", "1", "--passes", "1", "--size", "64", "--crop", "32"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| off (", "| on ("))]
    assert [row.split("|")[2].strip() for row in rows] == ["False", "True"]  # TensorFlow's own answer
    assert all(row.rstrip(" |").endswith(" ms") for row in rows)


def test_channel_choice_count_runs_without_the_network(capsys):
    from benchmarks import channels
    from train.locations import SAMPLES_DATA_DIR

    assert channels.main(["--choice-only", "--data", str(SAMPLES_DATA_DIR)]) == 0
    printed = capsys.readouterr().out
    assert "composites of 2 fluorescence images" in printed   # the two fluorescence samples
    assert printed.count("nuclear channel chosen in 2 of 2; missed: -") == 3   # every composite


def test_png_benchmark_compares_both_encoders_on_the_samples(capsys):
    from benchmarks import png
    from train.locations import SAMPLES_DATA_DIR

    assert png.main(["--data", str(SAMPLES_DATA_DIR), "--every", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = [line for line in printed if "| Pillow" in line]
    assert rows and all(line.count(" ms ") == 2 and line.count(" KB") == 2 for line in rows)
    assert printed[-1].endswith(f"of {len(rows)} overlays")


def test_diameter_notes_benchmark_counts_each_factor(capsys):
    from benchmarks import diameter_notes
    from train.locations import SAMPLES_DATA_DIR

    assert diameter_notes.main(["--data", str(SAMPLES_DATA_DIR), "--every", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("given ")]
    assert [row.split(" the true")[0] for row in rows] == ["given 1.00x", "given 0.33x", "given 3.00x"]
    assert all(" of 4 images" in row for row in rows)   # the four samples


def test_z_planes_benchmark_scores_each_choice(capsys):
    from benchmarks import z_planes
    from train.locations import SAMPLES_DATA_DIR

    assert z_planes.main(["--data", str(SAMPLES_DATA_DIR), "--every", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = [line for line in printed if line.startswith("--z-plane ")]
    assert [row.split()[1] for row in rows] == ["default", "focus", "max", "2"]
    assert all(0.0 <= float(row.split("mean AP ")[1]) <= 1.0 for row in rows)
    assert printed[-1].startswith("focus chose the sharp plane on ") and printed[-1].endswith(" of 4 stacks")


def test_shape_memory_benchmark_prints_each_setting_s_growth(capsys):
    from benchmarks import shape_memory

    shapes = shape_memory.distinct_shapes(120)
    assert len(set(shapes)) == 120 and all(128 <= side <= 512 and side % 16 == 0 for shape in shapes for side in shape)
    assert shape_memory.main(["--shapes", "2", "--every", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("| 1 shapes ") == 2 and printed.count("| 2 shapes ") == 2 and "failed" not in printed


def test_app_memory_s_long_lived_run_takes_every_other_run_s_images_then_the_varied_sizes(tmp_path):
    from argparse import Namespace

    from PIL import Image

    from benchmarks import app_memory

    runs = app_memory.scenarios(Namespace(size=64, sessions=3, large=96, varied=2), tmp_path)
    assert [len(run.waves) for run in runs] == [1, 1, 1, 4] and len(runs[1].waves[0]) == 3
    long_lived = [wave[0] for wave in runs[-1].waves]
    assert long_lived[:2] == [runs[0].waves[0][0], runs[2].waves[0][0]]
    assert [Image.open(path).size for path in long_lived[2:]] == [(320, 256), (360, 360)]  # (width, height)
