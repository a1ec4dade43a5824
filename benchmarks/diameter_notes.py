"""How often a diameter given is noted as looking wrong: at each image's true diameter (should
be rare) and at that diameter times 1/3 and 3 (should be most).

    python -m benchmarks.diameter_notes [--data FOLDER] [--every 4] [--model SOURCE]

Every ``--every``-th image of the data folder, segmented with defaults but the diameter given:
its ground truth's median nucleus diameter times each factor.
"""
from __future__ import annotations

from benchmarks.sampled import sampled_images
from nuclei_app.diameter_check import given_diameter_note
from nuclei_app.imageio import read_channels
from nuclei_app.pipeline import segment
from nuclei_app.scale import median_diameter
from train.data import read_instance_labels

FACTORS = (1.0, 1 / 3, 3.0)


def main(argv: list[str] | None = None) -> int:
    model, samples = sampled_images("python -m benchmarks.diameter_notes", __doc__, argv)
    noted = {factor: [] for factor in FACTORS}
    for files in samples:
        truth = median_diameter(read_instance_labels(files))
        if truth is None:
            continue
        channels = read_channels(files.image_path)
        for factor in FACTORS:
            if given_diameter_note(model, channels, segment(model, channels, diameter=truth * factor)):
                noted[factor].append(files.sample_id[:10])
    total = len(samples)
    for factor in FACTORS:
        examples = f" ({', '.join(noted[factor])})" if factor == 1.0 and noted[factor] else ""
        print(f"given {factor:.2f}x the true diameter: noted on {len(noted[factor])} of {total} images{examples}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
