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


def test_each_units_label_and_note_are_drawn_whole_left_of_the_maps():
    strength = np.random.default_rng(1).random((2, 2, 64, 64)).astype(np.float32)
    notes = ["0.0138 (lum 0.0043, col 0.013)", "0.00883 (lum 0.0028, col 0.0083)"]  # a real run's, at 64x64
    figure = influence_grid(strength, ["1:red", "2:circle"], notes, [None, None], "influence maps")
    font = ImageFont.load_default()
    grey = np.asarray(figure.convert("L"))
    cell = (figure.height - 58 - 8) // 2
    for u, note in enumerate(notes):
        top = 58 + u * cell + 18
        band = grey[top:top + 11]
        dark = np.nonzero((band < 200).any(axis=0))[0]
        end = 8 + font.getlength(note)
        text_end = dark[dark < end + 4].max()
        assert text_end >= end - 3, (note, text_end, end)  # the note's last character is drawn
        # and a blank gap separates it from the first map
        assert (band[:, int(end) + 1:int(end) + 8] >= 250).all()
