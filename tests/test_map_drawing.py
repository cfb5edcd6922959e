"""The influence-map figure keeps its header text inside the image at small image sizes."""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from prompt_pinning.reports.map_drawing import influence_grid


def test_the_header_fits_the_figure_at_64x64_with_one_slot():
    strength = np.random.default_rng(0).random((2, 1, 64, 64)).astype(np.float32)
    title = "Influence of each unit on the images (finite differences around the result's weights)"
    figure = influence_grid(strength, ["red", "circle"], ["tight", "loose"], [None], title)
    font = ImageFont.load_default()
    needed = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=font)
    assert figure.width >= 8 + needed
    # the right-most column of the header band is blank: nothing was cut there
    header = np.asarray(figure.convert("L"))[:30, -6:]
    assert (header == 255).all()
