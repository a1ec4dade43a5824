"""``python -m nuclei_app segment ...`` and ``python -m nuclei_app info``: argparse only."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .config import ReadLimits
from .interrupts import exit_status, sigterm_as_interrupt
from .precision import PRECISIONS


ENGINE_NAMES = {"xnnpack": "XNNPACK (TensorFlow Lite)", "tensorflow": "TensorFlow's"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nuclei_app", description="Segment cell nuclei in microscopy images.")
    commands = parser.add_subparsers(dest="command", required=True)
    seg = commands.add_parser("segment", help="segment images and write labels, masks, overlays and measurements")
    seg.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    seg.add_argument("--out", required=True, metavar="DIR",
                     help="output folder; with --workers/--scheduler also any fsspec URL the workers can reach "
                          "(s3://bucket/run/)")
    add_model_arguments(seg)
    seg.add_argument("--threshold", type=probability, help="nucleus probability threshold, 0 to 1 (default: the model's "
                                                           "tuned value)")
    seg.add_argument("--min-size", type=pixel_count, help="smallest nucleus kept, in the image's pixels (as the "
                                                          "measured areas); default: the model's tuned size, scaled "
                                                          "to each image's nucleus diameter")
    seg.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                     help="flip test-time augmentation: 4 passes, 4x the network time (default: on for light-"
                          "background images, brightfield and H&E, where it helps most; off for fluorescence)")
    seg.add_argument("--diameter", type=diameter_argument, metavar="PX",
                     help="typical nucleus diameter in pixels, or in µm with a unit (8um, 8µm): each image's pixel "
                          "size (--pixel-size, or its file's) turns it into pixels (default: estimated per image)")
    seg.add_argument("--pixel-size", type=pixel_size_argument, metavar="UM",
                     help="side of one pixel in µm, for measurements in µm (default: each file's own, from its "
                          "OME-TIFF, ImageJ or Aperio metadata or TIFF resolution in cm; where unknown the µm columns "
                          "stay empty)")
    seg.add_argument("--z-plane", type=z_plane_argument, metavar="N|focus|max",
                     help="which plane of a Z-stack to segment: N (from 0; default: the first), focus (the sharpest, "
                          "judged on the channel segmented) or max (their maximum-intensity projection); time points "
                          "and other axes give their first plane")
    seg.add_argument("--channel", type=channel_argument, default="auto", metavar="N",
                     help="channel holding the nuclei, counted from 0; 'all' uses a grey or RGB image's colours "
                          "as they are (H&E, brightfield); default 'auto' chooses per image")
    seg.add_argument("--formats", type=formats_argument, default=("png",), metavar="LIST",
                     help="comma list of output formats: png (labels, mask and overlay PNGs), tiff (16-bit label "
                          "TIFF), rois (ImageJ/Fiji ROI set), geojson (QuPath detections), intensities (every "
                          "channel's mean, max and integrated intensity per nucleus, CSV), or all; default png")
    seg.add_argument("--precision", choices=PRECISIONS, default="float32",
                     help="the network's arithmetic: bfloat16 runs faster on CPUs with AVX-512 BF16 or AMX; "
                          "int8 (8-bit integers on XNNPACK kernels) took half float32's time per pass on a 2-core Xeon "
                          "(validation mean AP of each: docs/precision_validation.txt); auto uses bfloat16 where the "
                          "CPU has it; default float32, the same labels on every machine")
    seg.add_argument("--engine", choices=["auto", "xnnpack", "tensorflow"], default="auto",
                     help="whose kernels run the network, for the same probabilities (to a few millionths): xnnpack "
                          "(TensorFlow Lite's: float32, and int8 always) or tensorflow; default auto: tensorflow with "
                          "--precision bfloat16 and on CPUs with AVX-512 VNNI/BF16 or AMX (its oneDNN kernels are "
                          "faster there), xnnpack elsewhere (about a third less CPU per image)")
    where = seg.add_mutually_exclusive_group()
    where.add_argument("--workers", type=worker_count, metavar="N",
                       help="run on a local Dask cluster of N processes (CLI extras: requirements-cli.txt)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://HOST:8786 (see the README)")
    seg.add_argument("--block-size", type=block_size, metavar="PX",
                     help="segment block by block (overlapping blocks of PX, stitched); automatic, and read "
                          f"lazily, for TIFFs over {ReadLimits().max_pixels / 1e6:g} megapixels")
    seg.add_argument("--skip-existing", action="store_true",
                     help="resume an interrupted run: skip images whose files and summary row are already in DIR "
                          "(an input changed since, in size or modification time, is segmented again)")
    seg.add_argument("--debug", action="store_true", help="show the full traceback of unexpected errors")
    info = commands.add_parser("info", help="show which model a source resolves to, and its validation metrics")
    add_model_arguments(info)
    info.add_argument("--json", action="store_true", help="print a JSON record instead of a summary")
    return parser.parse_args(argv)


def number_argument(kind: type, accept, requirement: str):
    """An argparse type: ``kind`` (int or float) for which ``accept(value)`` holds, else the
    message says what is required (e.g. "must be between 0 and 1")."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole number' if kind is int else 'number'}: {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{requirement}, got {text}")
        return value
    return parse


# The smallest nucleus diameter taken as meant (yeast nuclei are 1-2 µm): below it, a unit typo.
SMALLEST_NUCLEUS_UM = 0.5


def diameter_argument(text: str) -> tuple[float, str]:
    """(value, "px" or "µm"): --diameter 17 or 17px in pixels; 8um, 8 µm, 0.008mm (the length
    units OME and ImageJ write, ``calibration.UNIT_UM``) in µm."""
    from .calibration import UNIT_UM_LOWER, number_and_unit

    try:
        number, unit = number_and_unit(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if unit in ("", "px"):
        if not 0 < number < 10_000:
            raise argparse.ArgumentTypeError(f"must be a number of pixels above 0 and below 10000, got {text}")
        return number, "px"
    value = number * UNIT_UM_LOWER[unit]
    if not 0 < value < 1_000:
        raise argparse.ArgumentTypeError(f"must be a length above 0 and below 1000 µm, got {text}")
    if value < SMALLEST_NUCLEUS_UM:
        # A trial: 8nm for 8um ran a whole folder at "0.0 px", each image resized to its limit.
        typo = f"{number:g}um?" if UNIT_UM_LOWER[unit] < 1 else "give it in µm (8um) or px"
        raise argparse.ArgumentTypeError(f"{text} is {value:g} µm, smaller than any nucleus (they measure about "
                                         f"{SMALLEST_NUCLEUS_UM:g} to 100 µm): a unit typed wrong ({typo})")
    return value, "µm"


block_size = number_argument(int, lambda v: 256 <= v <= 16384, "must be 256 to 16384 px")
worker_count = number_argument(int, lambda v: v >= 1, "must be 1 or more workers")
probability = number_argument(float, lambda v: 0.0 <= v <= 1.0, "must be between 0 and 1")
pixel_count = number_argument(int, lambda v: v >= 0, "must be 0 or more pixels")


def pixel_size_argument(text: str) -> float:
    """µm: a plain number (0.65), or with a length unit (0.65um, 325nm)."""
    from .calibration import UNIT_UM_LOWER, check_given, number_and_unit

    try:
        number, unit = number_and_unit(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if unit == "px":
        raise argparse.ArgumentTypeError(f"a pixel's size is a length: µm as a plain number (0.65) or with a unit "
                                         f"(325nm), got {text}")
    try:
        return check_given(number * UNIT_UM_LOWER.get(unit, 1.0))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}, got {text}") from None


def z_plane_argument(text: str):
    from .planes import parse_z_plane

    try:
        return parse_z_plane(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def channel_argument(text: str):
    from .channels import parse_channel

    try:
        return parse_channel(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def formats_argument(text: str) -> tuple[str, ...]:
    from .exports import parse_formats

    try:
        return parse_formats(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="SOURCE",
                        help="model folder or hf://OWNER/NAME[@REVISION] (default: $NUCLEI_MODEL, else assets/model)")
    parser.add_argument("--no-fallback", action="store_true",
                        help="fail instead of falling back to the bundled model when SOURCE can't be used")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # tifffile logs what it repairs or steps over in damaged files (StripByteCounts, a tag whose
    # value lies past the end: "<TiffTag.fromfile> raised ...", at level error, twice, between
    # the progress lines in a user test). The reader says what matters about a file itself: its
    # error, or its note; what tifffile can't get past raises. segment --debug shows them all.
    logging.getLogger("tifffile").setLevel(logging.NOTSET if getattr(args, "debug", False) else logging.CRITICAL)
    try:
        with sigterm_as_interrupt():
            return run(args)
    except KeyboardInterrupt as interrupt:
        print("\ninterrupted: the images finished so far are in summary.csv and measurements.csv; "
              "run the same command with --skip-existing to go on from there.", file=sys.stderr)
        return exit_status(interrupt)
    except BrokenPipeError:  # `... | head`: the reader has gone, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:  # the output folder failed under the run (full, gone, read-only): no traceback
        from .batch import describe_write_problem

        print(f"error: {describe_write_problem(error)}. The images finished so far are in summary.csv; run the "
              "same command with --skip-existing once that is fixed.", file=sys.stderr)
        return 1


def output_folder_problem(out_text: str, on_cluster: bool) -> str | None:
    """Checked before the model loads: a bad --out is an argument error, found in a second."""
    if out_text.lower().startswith("memory://"):
        # A trial: "done: 2 segmented ... results in memory://run1/", exit 0, and every file lost:
        # each worker wrote into its own process's memory, the record into this one's.
        return (f"--out {out_text}: fsspec's memory:// file system lives inside one process, so the workers' "
                "files and this command's record would each stay in their own process and be lost at its end. "
                "Give a folder, or a URL every worker can reach (s3://, gs://, ...).")
    if "://" in out_text:
        return None if on_cluster else (f"--out {out_text} is a URL: only --workers or --scheduler runs write to "
                                        "URLs (their workers write through fsspec); give a local folder here.")
    out = Path(out_text)
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; give a folder (it is created if needed)."
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"--out {out}: the folder can't be created ({error.strerror or error})."
    if not os.access(out, os.W_OK):
        return f"--out {out}: this folder is not writable."
    return None


def stray_unit(paths: list[str]) -> str | None:
    """`--diameter 8 um mag/`: argparse takes "um" for an input, and every image ran at 8 px (a
    user test); a unit among the inputs that is no file is the value's, cut off by the space."""
    from .calibration import TYPED_UNITS

    for path in paths:
        if path.strip().lower() in TYPED_UNITS and not Path(path).exists():
            return (f"{path!r} is not a file or folder: a unit cut off by a space? Write the value and its unit "
                    f"together (--diameter 8{path.strip()}, --pixel-size 0.65{path.strip()}).")
    return None


def run(args: argparse.Namespace) -> int:
    if args.command == "segment":
        problem = output_folder_problem(args.out, on_cluster=bool(args.workers or args.scheduler)) or \
            stray_unit(args.paths)
        if args.engine == "tensorflow" and args.precision == "int8":  # the flags alone decide it: before loading
            problem = ("--precision int8 runs on XNNPACK's kernels only; leave out --engine tensorflow "
                       "or use --precision float32.")
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        if args.workers or args.scheduler:  # before the model loads, not after (a user test)
            from .distributed import ClusterError, probe_scheduler, require_cluster_packages

            try:
                require_cluster_packages()
                if args.scheduler:
                    probe_scheduler(args.scheduler)
            except ClusterError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
    from .model import ModelLoadError
    from .sources import describe, resolve_model

    try:
        model = resolve_model(args.model, fallback=not args.no_fallback)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if model.notice:
        print(f"warning: {model.notice}", file=sys.stderr)
    if args.command == "info":
        from .info import model_record, model_summary

        print(json.dumps(model_record(model), indent=2) if args.json else model_summary(model))
        return 0
    from .batch import ImageRequest, segment_paths
    from .diameter_check import diameter_out_of_reach
    from .pipeline import settings_for

    # Said once here (a model scored on a training image has no per-image weak-kind note).
    caveat = model.scores_caveat
    print(f"model: {describe(model)}" + (f" ({caveat})" if caveat else ""), file=sys.stderr)
    settings = settings_for(model, threshold=args.threshold, min_size=args.min_size)
    model.set_precision(args.precision)
    if args.engine == "xnnpack" and model.precision == "bfloat16":
        print(f"error: --engine xnnpack computes in float32 or int8, and --precision {args.precision} chose "
              f"bfloat16 here; use --precision float32 or --engine tensorflow.", file=sys.stderr)
        return 2
    model.set_engine(args.engine)
    # Workers prepare their own; int8 is prepared here too (a conversion, cached), so that a
    # network that can't be quantized is said once and the run asks its workers for float32.
    if not (args.workers or args.scheduler) or model.precision == "int8":
        model.prepare()
    print(f"network: {model.precision} on {ENGINE_NAMES[model.runs_on]} kernels", file=sys.stderr)
    value, unit = args.diameter or (None, "px")
    # In µm it is each image's own number of pixels: its note says so where it is out of reach.
    reach = diameter_out_of_reach(value, model.diameter) if value and unit == "px" else None
    if reach:
        print(f"warning: {reach}.", file=sys.stderr)
    request = ImageRequest(settings, args.tta, value if unit == "px" else None, args.channel, args.formats,
                           args.block_size, model.precision, args.engine, args.pixel_size, args.z_plane,
                           diameter_um=value if unit == "µm" else None)
    if args.workers or args.scheduler:
        from .distributed import ClusterError, cluster_model_source, run_on_cluster

        try:
            result = run_on_cluster(args.paths, args.out, request, cluster_model_source(model), workers=args.workers,
                                    scheduler=args.scheduler, debug=args.debug, skip_existing=args.skip_existing,
                                    model=model)
        except ClusterError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    else:
        result = segment_paths(model, args.paths, Path(args.out), request, debug=args.debug,
                               skip_existing=args.skip_existing)
    if not result.found_nothing:
        kept = f"{result.kept} kept from before, " if result.kept else ""
        print(f"done: {len(result.processed) - result.kept} segmented, {kept}{len(result.failed)} failed; results in "
              f"{args.out.rstrip('/' + os.sep)}{'/' if '://' in args.out else os.sep} (summary.csv lists every input)",
              file=sys.stderr)
    return result.exit_status


if __name__ == "__main__":
    sys.exit(main())
