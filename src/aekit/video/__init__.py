"""Video to text: the moving-digits generator and its caption grammar, clip files and GIFs,
user clip folders, BLEU and frame strips. The captioner itself is ``aekit.tasks.captioning``."""

from .bleu import corpus_bleu
from .clips import CAPTIONS_FILE, check_captions, check_clips, load_clip_folder, load_clips, read_clip, save_clips
from .figures import attention_sheet, frame_strip, write_attention_sheet, write_sheet, write_strip
from .generator import MovingDigits, make_moving_digits, mnist_digits, moving_mnist
from .gif import read_gif, write_gif
from .grammar import DIRECTION_NAMES, DIRECTIONS, Slot, make_caption, parse_caption, slot_accuracy

__all__ = [
    "CAPTIONS_FILE", "DIRECTIONS", "DIRECTION_NAMES", "MovingDigits", "Slot", "attention_sheet", "check_captions",
    "check_clips",
    "corpus_bleu", "frame_strip", "load_clip_folder", "load_clips", "make_caption", "make_moving_digits",
    "mnist_digits", "moving_mnist", "parse_caption", "read_clip", "read_gif", "save_clips", "slot_accuracy",
    "write_attention_sheet", "write_gif", "write_sheet", "write_strip",
]
