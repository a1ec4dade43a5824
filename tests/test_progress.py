"""Progress in a plain log: tile and block lines for long images. (The bar on a terminal is
checked on a real run, in test_batch.)"""
import io

from nuclei_app.progress import Progress


def test_a_long_image_shows_its_tiles_moving_in_a_plain_log():
    log = io.StringIO()
    with Progress(1, log) as progress:
        report = progress.tiles("slide.tif")
        for done in range(1, 41):
            report(done, 40)
        progress.tiles("small.tif")(1, 4)  # a few tiles: no lines
    lines = log.getvalue().splitlines()
    assert lines == [f"  slide.tif: {4 * k} of 40 tiles" for k in range(1, 11)]
    log.truncate(0)
    log.seek(0)
    with Progress(1, log) as progress:  # planned again (a measured diameter): counted again
        report = progress.tiles("slide.tif")
        for tiles in (40, 30):
            for done in range(1, tiles + 1):
                report(done, tiles)
    assert log.getvalue().count("of 30 tiles") == 10
    assert log.getvalue().splitlines()[10] == ("  slide.tif: its tiles again, at another diameter (the image's line "
                                              "gives the one used)")
    log.truncate(0)
    log.seek(0)
    with Progress(1, log) as progress:  # a few blocks, each taking seconds: every one is shown
        report = progress.tiles("huge.tif", blocks=True)
        for done in range(1, 10):
            report(done, 9)
    assert log.getvalue().splitlines() == [f"  huge.tif: {k} of 9 blocks" for k in range(1, 10)]
    report(1, 9)   # a second pass of as many blocks (a trial: counted twice, no word why)
    assert log.getvalue().splitlines()[-2:] == ["  huge.tif: its blocks again, at another diameter (the image's line "
                                                "gives the one used)", "  huge.tif: 1 of 9 blocks"]
