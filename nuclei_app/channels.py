"""The nuclear channel: which plane of a multi-channel image the network should look at.

Fluorescence users have composites: nuclei (DAPI, Hoechst) in one channel, a cytoplasm or
membrane stain in another, sometimes empty or noisy channels. Fed to the network as colour,
the cytoplasm stain looks like huge nuclei. Brightfield and H&E images, on the other hand,
need all three colours. ``choose_channel`` tells the two apart and, for a composite, picks
the channel that looks like nuclei; ``network_rgb`` turns the choice into the RGB input that
``inference.preprocess`` expects.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from .canvas import Box, content_box, crop_sample
from .channelwise import channel_min, planes_differ
from .config import Normalisation
from .inference import Stretch
from .sampling import side_stride

AUTO = "auto"        # let ``choose_channel`` decide
ALL_CHANNELS = "all"  # use the image's colours as they are (grey, RGB, H&E)
COLOUR_COUNTS = (1, 3)  # the images that have colours to use: grey and RGB

# Median of the darkest channel above which an RGB image is transmitted light (see is_light_rgb):
# DSB2018's H&E and brightfield images are all above 0.22, dark-field composites near 0.
LIGHT_MIN_CHANNEL = 0.15
# Share of a channel's foreground (above Otsu's threshold) that must survive a 5x5 opening
# for it to hold nuclei: noise and a membrane stain's thin outlines keep 0-0.03, nuclear and
# cytoplasm stains 0.75-1.0 (composites of DSB2018's 541 fluorescence images).
SOLID_FRACTION = 0.5
# Solid objects a channel must hold to be taken for nuclei before a channel holding fewer:
# an unused channel that only carries uneven illumination is one smooth blob that survives
# the opening too, and a dense nuclear field covers more area than it does.
MIN_OBJECTS = 3
# Without the noise floor too: the channel scores compare shapes, and were measured without it.
STRETCH_ONLY = Normalisation(invert_light_background=False, noise_span=0.0)


def as_channels(image: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 1); (H, W, C) unchanged."""
    return image[..., None] if image.ndim == 2 else image


def is_grey(image: np.ndarray) -> bool:
    """One channel, or colour channels that are copies of each other (a grey PNG saved as RGB)."""
    image = as_channels(image)
    if image.shape[-1] == 1:
        return True
    sample = _sample(image)
    return not planes_differ(sample, 1e-3)


def is_light_rgb(image: np.ndarray) -> bool:
    """An RGB image with a light background: brightfield, H&E, IHC (all transmitted light).

    Transmitted light is white where nothing absorbs it, so most pixels are bright in *every*
    channel; a fluorescence composite is dark in at least one channel almost everywhere,
    however much of the field its cytoplasm stain covers."""
    image = as_channels(image)
    # Three channels only: RGBA files reach here as RGB (imageio drops 8-bit and constant
    # alpha), so four are taken for a fluorescence stack, whose first three may all be
    # confluent cytoplasm stains, bright everywhere, with the nuclei in the fourth.
    if image.shape[-1] != 3:
        return False
    rgb = _stretch(_sample(image))  # one stretch for all three: colours keep their balance
    return float(np.median(channel_min(rgb))) > LIGHT_MIN_CHANNEL


def choose_channel(image: np.ndarray) -> int | str:
    """The index of the nuclear channel, or ``ALL_CHANNELS`` where all colours should be used.
    Decided on the field of view, not on a blank canvas around it (``canvas.content_box``)."""
    image = as_channels(image)
    return choose_channel_in(image, content_box(image))


def choose_channel_in(image: np.ndarray, box: Box | None) -> int | str:
    """``choose_channel`` with the image's content box already found."""
    image = as_channels(image)
    return choose_channel_of_sample(crop_sample(_sample(image), box, side_stride(image.shape, SAMPLE_SIDE)))


def choose_channel_of_sample(sample: np.ndarray) -> int | str:
    """``choose_channel``, given its sample of the image's field of view (``_sample``'s pixels
    inside the content box): ``blocks`` gathers it in its pass over a huge image."""
    image = as_channels(sample)
    if is_grey(image) or is_light_rgb(image):
        # A stack of identical channels is its first: "all" is a grey or RGB image's colours.
        return ALL_CHANNELS if image.shape[-1] in COLOUR_COUNTS else 0
    scores = [channel_score(image[..., c]) for c in range(image.shape[-1])]
    # Nuclei are compact, filled objects: noise and a membrane stain's thin outlines are not.
    # (Otsu's separability no longer gates this: a dim nuclear stain on a noisy background
    # scores as low as noise, 0.61-0.75 for one image in ten of DSB2018, and was passed over
    # for the cytoplasm beside it.)
    solid = [c for c, score in enumerate(scores) if score[2] >= SOLID_FRACTION]
    if not solid:
        return int(np.argmax([score[0] for score in scores]))
    solid = [c for c in solid if scores[c][3] >= MIN_OBJECTS] or solid
    # A nuclear stain lights up the nuclei only; a cytoplasm stain lights up the whole cell
    # around them, and neighbouring cells run together: of the channels that hold solid
    # objects, the nuclear one's objects are the smallest. (The area alone, the rule before,
    # was fooled by a cytoplasm stain whose brightness varies from cell to cell, as a
    # transfected one does: Otsu's threshold then keeps only the brightest cells, less area
    # than the nuclei. Composites of DSB2018's 541 fluorescence images: the nuclear channel
    # chosen in 528 against 425; as often or more in every other composite,
    # ``python -m benchmarks.channels --choice-only``.)
    return min(solid, key=lambda c: foreground_per_object(scores[c]))


def foreground_per_object(score: tuple[float, float, float, int]) -> float:
    """A ``channel_score``'s foreground fraction over the objects that survive its opening:
    the mean object's share of the image."""
    return score[1] / max(score[3], 1)


def channel_score(plane: np.ndarray) -> tuple[float, float, float, int]:
    """(Otsu separability, fraction above Otsu's threshold, share of that foreground that
    survives a 5x5 opening, how many separate objects survive it) of one percentile-stretched
    plane."""
    values = _stretch(_sample(plane))
    if values.max() - values.min() < 1e-6:
        return 0.0, 1.0, 0.0, 0
    threshold = threshold_otsu(values)
    above = values > threshold
    fraction = float(above.mean())
    if fraction in (0.0, 1.0):
        return 0.0, fraction, 0.0, 0
    between = fraction * (1 - fraction) * (values[above].mean() - values[~above].mean()) ** 2
    opened = ndimage.binary_opening(above, np.ones((5, 5), bool))
    objects = ndimage.label(opened)[1]
    return float(between / values.var()), fraction, float(opened.sum() / above.sum()), int(objects)


def network_rgb(image: np.ndarray, channel: int | str) -> np.ndarray:
    """The (H, W, 3) image the network sees: the chosen channel as grey, or the colours."""
    image = as_channels(image)
    if channel == ALL_CHANNELS:
        if image.shape[-1] >= 3:
            return image[..., :3]
        return np.repeat(image[..., :1], 3, axis=-1)
    return np.repeat(image[..., channel:channel + 1], 3, axis=-1)


def intensity_image(image: np.ndarray, channel: int | str) -> np.ndarray:
    """What the measurements' intensities are taken on: the nuclear channel, or (``all``)
    every channel, which ``measure`` averages."""
    return image[..., channel] if channel != ALL_CHANNELS else image


def display_rgb(image: np.ndarray, channel: int | str) -> np.ndarray:
    """What the user sees under the overlay: RGB composites as they are, other stacks as
    their nuclear channel."""
    image = as_channels(image)
    if image.shape[-1] == 3:
        return image
    return network_rgb(image, channel if channel != ALL_CHANNELS else 0)


def usable_channel(image: np.ndarray, channel: int | str, notes: list[str]) -> int | str:
    """The batch's --channel N for one image: a single-channel image in the same folder has
    just the one channel to give (DAPI-only fields beside composites), segmented with a note."""
    if isinstance(channel, int) and as_channels(image).shape[-1] == 1:
        notes.append(f"one channel only (grey, or colours that are copies of one grey): --channel {channel} does not "
                     "apply, its one channel is segmented")
        return AUTO
    return channel


def channel_note(image: np.ndarray, channel: int | str) -> str | None:
    """A note where the channel asked for is not the automatic choice: all the colours of an
    RGB image (``--channel all``, the app's "All colours") that looks like a fluorescence
    composite, whose cytoplasm or membrane stain the network, shown the colours, takes for
    large nuclei or background (a user test: 1 nucleus, no word, where the automatic choice
    found 107); or one channel picked by hand where another looks like the nuclei (a trial:
    the cytoplasm channel picked gave whole cells as "nuclei", with no word). Costs a channel
    choice (a few ms) where a channel was asked for."""
    count = as_channels(image).shape[-1]
    if channel == ALL_CHANNELS and count == 3:
        chosen = choose_channel(image)
        if chosen == ALL_CHANNELS:
            return None
        return (f"segmented on all its colours, but it looks like a fluorescence composite (dark in at least one "
                f"colour almost everywhere), whose other stains hide its nuclei or pass for them: channel {chosen}, "
                "the automatic choice, looks like the nuclear one")
    if not isinstance(channel, int) or count < 2:
        return None
    chosen = choose_channel(image)
    if chosen == channel or (chosen == ALL_CHANNELS and is_grey(image)):  # copies of one grey plane
        return None
    automatic = ("all its colours: it looks like brightfield or H&E, which the model reads in colour"
                 if chosen == ALL_CHANNELS else
                 f"channel {chosen}: its objects look more like nuclei (compact, filled, the smallest of the channels)")
    return (f"segmented on channel {channel}, as asked; the automatic choice would be {automatic}. If the nuclei "
            "found look like whole cells, outlines or noise, use the automatic choice")


def check_channel(image: np.ndarray, channel: int | str, name: str | None = None) -> None:
    """The message says what is wrong and what to do; the file's name only if given (callers
    that report the file themselves leave it out, so it is not said twice)."""
    count = as_channels(image).shape[-1]
    if channel == ALL_CHANNELS and count not in COLOUR_COUNTS:
        # A user test: on a 2-channel stack "all" segmented channel 0, said "channel all", and
        # averaged both channels into the nuclei's intensities.
        raise ValueError(f"{name + ': ' if name else ''}channel 'all' uses the colours of a grey or RGB image, but "
                         f"the image has {count} channels; choose the one holding the nuclei (0 to {count - 1}), "
                         "or 'auto'.")
    if channel != ALL_CHANNELS and not 0 <= channel < count:
        raise ValueError(f"{name + ': ' if name else ''}channel {channel} asked for, but the image has {count} "
                         f"channel{'s' if count > 1 else ''} (0 to {count - 1}); choose one of those, or 'auto'.")


def parse_channel(text: str) -> int | str:
    """A --channel value: 'auto', 'all', or a 0-based channel index."""
    text = str(text).strip().lower()
    if text in (AUTO, ALL_CHANNELS):
        return text
    if text.isdigit():
        return int(text)
    raise ValueError(f"channel must be 'auto', 'all' or a channel number (0, 1, ...), got {text!r}.")


def _stretch(values: np.ndarray) -> np.ndarray:
    """The shared percentile stretch of ``inference.preprocess``, without its inversion or its
    noise floor (on a sample already inside the content box: not looked for a canvas again)."""
    return Stretch.fitted(values, STRETCH_ONLY)[1]


SAMPLE_SIDE = 512  # the longest side of the sample the channel is chosen on


def _sample(image: np.ndarray, max_side: int = SAMPLE_SIDE) -> np.ndarray:
    step = side_stride(image.shape, max_side)
    return np.asarray(image[::step, ::step], np.float32)

