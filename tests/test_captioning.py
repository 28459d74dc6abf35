"""Video to text: the moving-digits generator and grammar, GIFs and clip folders, BLEU, the
video_captioner model, the VideoCaptioner task and ``aekit caption``. Tiny clips throughout
(scikit-learn's 8x8 digits in 20x20 frames, 8 frames), so the whole file runs in seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import aekit
from _cli_helpers import assert_fails, run_cli
from aekit.errors import ConfigError, DataError, DataFileError, ModelFileError, NotFittedError
from aekit.models import create_model, list_presets
from aekit.tasks.captioning import VideoCaptioner
from aekit.video import (
    DIRECTION_NAMES,
    DIRECTIONS,
    Slot,
    corpus_bleu,
    load_clip_folder,
    load_clips,
    make_caption,
    make_moving_digits,
    parse_caption,
    read_clip,
    read_gif,
    save_clips,
    slot_accuracy,
    write_gif,
    write_strip,
)

FRAMES, SIZE = 8, 20
TINY = dict(channels=(4, 8), frame_dim=16, hidden=24, embed_dim=8)


@pytest.fixture(scope="module")
def small_digits():
    """scikit-learn's 8x8 digits as uint8 images (n, 8, 8) and labels."""
    from sklearn.datasets import load_digits

    b = load_digits()
    return np.clip(b.images * 16, 0, 255).astype(np.uint8), b.target.astype(np.int64)


def _clips(small_digits, n, n_digits=1, seed=0):
    x, y = small_digits
    return make_moving_digits(x, y, n_clips=n, n_frames=FRAMES, size=SIZE, n_digits=n_digits, seed=seed)


@pytest.fixture(scope="module")
def fitted(small_digits):
    """A tiny captioner (attention over whole frames) fitted once on 160 one-digit clips (a few seconds)."""
    s = _clips(small_digits, 160)
    est = VideoCaptioner(preset="frames", epochs=3, batch_size=16, lr=3e-3, warmup_steps=5, val_fraction=0.1, **TINY)
    return est.fit(s.frames, s.captions), s


# -- grammar, slots, BLEU ------------------------------------------------------------------------
def test_caption_grammar_round_trips_every_slot():
    for d in DIRECTION_NAMES:
        for b in (False, True):
            slots = [Slot(7, d, b)]
            assert parse_caption(make_caption(slots)) == slots
    two = make_caption([Slot(5, "down", False), Slot(3, "right", True)])
    assert two == "the digit 3 moves right and bounces while the digit 5 moves down"  # smaller digit first
    assert parse_caption(two) == [Slot(3, "right", True), Slot(5, "down", False)]
    assert parse_caption("The digit 7  moves up and to the left") == [Slot(7, "up and to the left")]
    for bad in ["", "the digit 7 moves sideways", "the digit 12 moves up", "digit 7 moves up"]:
        assert parse_caption(bad) is None
    with pytest.raises(ValueError, match="direction"):
        make_caption([Slot(1, "north")])


def test_slot_accuracy_reads_the_slots_back():
    refs = ["the digit 3 moves up", "the digit 1 moves left and bounces while the digit 2 moves down"]
    preds = ["the digit 3 moves down", "the digit 1 moves left while the digit 2 moves down"]
    acc = slot_accuracy(preds, refs)
    assert acc["digit_accuracy"] == 1.0
    assert acc["direction_accuracy"] == pytest.approx(2 / 3)
    assert acc["bounce_accuracy"] == pytest.approx(2 / 3)
    assert acc["count_accuracy"] == 1.0 and acc["parse_rate"] == 1.0
    garbled = slot_accuracy(["moves moves", "the digit 1 moves left"], refs)
    assert garbled["parse_rate"] == 0.5 and garbled["count_accuracy"] == 0.0
    assert garbled["digit_accuracy"] == pytest.approx(1 / 3)  # digit 2 was left out: wrong


def test_bleu_limits_and_agreement_with_sacrebleu():
    refs = ["the digit 3 moves up and to the left", "the digit 4 moves down and bounces"]
    assert corpus_bleu(refs, refs) == pytest.approx(1.0)
    assert corpus_bleu(["a b c", "d e f"], refs) == 0.0
    hyps = ["the digit 3 moves up and to the right", "the digit 4 moves down"]
    ours = corpus_bleu(hyps, refs)
    assert 0 < ours < 1
    sacrebleu = pytest.importorskip("sacrebleu")
    assert ours == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score / 100, abs=1e-9)


# -- generator -----------------------------------------------------------------------------------
def test_generation_is_deterministic_by_seed(small_digits):
    a, b = _clips(small_digits, 12, 2, seed=3), _clips(small_digits, 12, 2, seed=3)
    assert np.array_equal(a.frames, b.frames) and a.captions == b.captions
    c = _clips(small_digits, 12, 2, seed=4)
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (12, FRAMES, SIZE, SIZE) and a.frames.dtype == np.uint8


@pytest.mark.parametrize("n_digits", [1, 2])
def test_captions_match_the_generated_motion(small_digits, n_digits):
    x, _ = small_digits
    s = _clips(small_digits, 40, n_digits, seed=1)
    for i in range(len(s.frames)):
        slots = parse_caption(s.captions[i])
        assert slots is not None and len(slots) == n_digits
        assert [sl.digit for sl in slots] == sorted(set(sl.digit for sl in slots))  # distinct, ascending
        frame0 = np.zeros((SIZE, SIZE), np.uint8)
        for j, sl in enumerate(slots):
            pos = s.positions[i, :, j].astype(np.float64)
            step = np.diff(pos, axis=0)  # (T - 1, 2) per-frame motion (x, y)
            want = np.array(DIRECTIONS[sl.direction], float)
            # the first frames move in the named direction (no bounce before n_frames // 4)
            assert np.array_equal(np.sign(step[0].round(6)), want), (s.captions[i], step[0])
            reversed_axis = (np.sign(step[1:]) != np.sign(step[:-1])) & (want != 0)
            assert bool(reversed_axis.any()) == sl.bounces, s.captions[i]
            assert sl.digit == s.digits[i, j]
            # the frame holds the digit's image at its (rounded) position
            px, py = (int(round(c)) for c in pos[0])
            np.maximum(frame0[py : py + 8, px : px + 8], x[s.sources[i, j]], out=frame0[py : py + 8, px : px + 8])
        assert np.array_equal(s.frames[i, 0], frame0)


def test_generator_refuses_bad_options(small_digits):
    x, y = small_digits
    with pytest.raises(ConfigError, match="n_digits"):
        make_moving_digits(x, y, n_clips=2, n_digits=3)
    with pytest.raises(ConfigError, match="larger"):
        make_moving_digits(x, y, n_clips=2, size=8)
    with pytest.raises(DataError, match="different digits"):
        make_moving_digits(x[y == 1], y[y == 1], n_clips=2, size=SIZE, n_frames=FRAMES, n_digits=2)


# -- files: npz, GIF, strips, clip folders ---------------------------------------------------------
def test_npz_gif_and_strip_round_trips(tmp_path, small_digits):
    s = _clips(small_digits, 3)
    save_clips(tmp_path / "set.npz", s.frames, s.captions)
    frames, captions = load_clips(tmp_path / "set.npz")
    assert np.array_equal(frames, s.frames) and captions == s.captions
    write_gif(tmp_path / "c.gif", s.frames[0])
    assert np.array_equal(read_gif(tmp_path / "c.gif"), s.frames[0])
    assert np.array_equal(read_clip(tmp_path / "c.gif"), s.frames[0])
    np.save(tmp_path / "c.npy", s.frames[0].astype(np.float32) / 255)
    assert np.array_equal(read_clip(tmp_path / "c.npy"), s.frames[0])
    write_strip(tmp_path / "strip.png", s.frames[0], [s.captions[0]])
    from PIL import Image

    assert Image.open(tmp_path / "strip.png").size[0] > SIZE * 2


def test_bad_files_give_clear_errors(tmp_path):
    (tmp_path / "broken.gif").write_bytes(b"GIF89a not really")
    with pytest.raises(DataFileError, match="not a readable GIF"):
        read_gif(tmp_path / "broken.gif")
    np.save(tmp_path / "flat.npy", np.zeros((4, 5)))
    with pytest.raises(DataError, match="frames, height, width"):
        read_clip(tmp_path / "flat.npy")
    with pytest.raises(DataFileError, match=".npy array or a .gif"):
        read_clip(tmp_path / "clip.mp4")
    with pytest.raises(DataError, match="empty caption"):
        save_clips(tmp_path / "x.npz", np.zeros((2, 3, 4, 4), np.uint8), ["a b", "  "])


def test_clip_folder_loader(tmp_path, small_digits):
    from PIL import Image

    s = _clips(small_digits, 2)
    frames_dir = tmp_path / "walk"
    frames_dir.mkdir()
    for t, f in enumerate(s.frames[0]):
        Image.fromarray(f).convert("RGB").save(frames_dir / f"{t:03d}.png")  # colour frames become grey
    np.save(tmp_path / "run.npy", s.frames[1])
    (tmp_path / "captions.csv").write_text(
        "clip,caption\nwalk,a digit walks\nrun.npy,a digit runs\nrun.npy,the digit runs fast\n")
    frames, captions = load_clip_folder(tmp_path)
    assert frames.shape == (3, FRAMES, SIZE, SIZE) and captions[2] == "the digit runs fast"
    assert np.array_equal(frames[0], s.frames[0]) and np.array_equal(frames[1], s.frames[1])
    small, _ = load_clip_folder(tmp_path, n_frames=4, size=10)
    assert small.shape == (3, 4, 10, 10)
    (tmp_path / "captions.csv").write_text("clip,caption\nwalk,\n")
    with pytest.raises(DataError, match="empty caption"):
        load_clip_folder(tmp_path)
    (tmp_path / "captions.csv").write_text("clip,caption\nmissing.npy,hello\n")
    with pytest.raises(DataFileError, match="not found"):
        load_clip_folder(tmp_path)


# -- the model -------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", [None, *list_presets("video_captioner")])
def test_model_forward_backward_reaches_every_parameter(preset):
    channels = (4, 8) if preset != "pooled" else None
    model = create_model("video_captioner", preset, input_shape=(5, 16, 16), vocab_size=12, channels=channels)
    x = torch.rand(3, 5, 16, 16)
    ids = torch.tensor([[4, 5, 6, 0], [7, 8, 0, 0], [9, 10, 11, 4]])
    assert model(x, ids).shape == (3, 5, 12)  # (B, L + 1, vocab)
    terms = model.loss((x, ids))
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no/invalid gradient for {missing}"
    assert model.encode(x).shape == (3, *model.code_shape)
    model.eval()
    out = model.generate(x, beam=2, max_len=6)
    assert out.shape[0] == 3 and out.shape[1] <= 7


def test_beam_width_one_equals_greedy(fitted):
    est, s = fitted
    x = torch.from_numpy(s.frames[:32]).float() / 255
    model = est.model_
    greedy = model.generate(x, beam=1)
    assert torch.equal(model.beam_search(x, beam=1), greedy)
    torch.manual_seed(1)
    fresh = create_model("video_captioner", input_shape=(FRAMES, SIZE, SIZE), vocab_size=30, **TINY).eval()
    assert torch.equal(fresh.beam_search(x, beam=1, max_len=8), fresh.generate(x, beam=1, max_len=8))


def test_spatial_attention_beam_one_equals_greedy_and_reads_positions():
    torch.manual_seed(0)
    model = create_model("video_captioner", "spatial", input_shape=(6, 16, 16), vocab_size=20,
                         channels=(4, 8), spatial_dim=8).eval()
    x = torch.rand(4, 6, 16, 16)
    assert torch.equal(model.beam_search(x, beam=1, max_len=8), model.generate(x, beam=1, max_len=8))
    assert model.beam_search(x, beam=3, max_len=8).shape[0] == 4
    # each frame's softmax over positions finds the one key that matches the query
    mem, _ = model._encode(x)
    b, t, p, _ = mem.keys.shape
    assert (p, mem.values.shape[-1]) == (16, 8) and mem.grid.shape == (16, 2)  # 16x16 frames -> a 4x4 map
    out = torch.randn(b, 1, model.config.hidden)
    q = model.s_query(out)[:, 0]  # (B, hidden)
    spot = torch.tensor([(i * 5) % p for i in range(t)])  # a different position in every frame
    keys = torch.zeros_like(mem.keys)
    keys[:, torch.arange(t), spot] = 400 * q[:, None] / q.norm(dim=1, keepdim=True)[:, None]
    what, how = model._look(out, mem._replace(keys=keys))
    assert how.shape == (b, 1, model.config.motion_hidden)
    expected = mem.values[:, torch.arange(t), spot].mean(1)  # (B, spatial_dim): what sits there, frame by frame
    assert torch.allclose(what[:, 0], expected, atol=1e-4)
    still, _ = model._look(out, mem._replace(keys=keys[:, :, [0] * p]))  # no position stands out
    assert not torch.allclose(still[:, 0], expected, atol=1e-2)


def test_attention_maps_of_a_fitted_spatial_captioner(small_digits, tmp_path, fitted):
    from PIL import Image

    from aekit.video import write_attention_sheet

    s = _clips(small_digits, 64, n_digits=2)
    est = VideoCaptioner(preset="spatial", epochs=1, batch_size=16, warmup_steps=2, val_fraction=0, **TINY)
    est.fit(s.frames, s.captions)
    words, maps = est.attention(s.frames[0])
    assert words == est.predict(s.frames[:1])[0].split()
    assert maps.shape == (len(words), FRAMES, 5, 5)  # 20x20 frames, two stride-2 convs -> 5x5
    np.testing.assert_allclose(maps.sum((2, 3)), 1.0, atol=1e-5)
    words2, maps2 = est.attention(s.frames[0], s.captions[0])
    assert words2 == s.captions[0].split() and maps2.shape[0] == len(words2)
    path = write_attention_sheet(tmp_path / "att.png", s.frames[0], words2, maps2, max_frames=4)
    img = Image.open(path)
    assert img.mode == "RGB" and img.height > len(words2) * SIZE * 2
    with pytest.raises(ValueError, match="n_words"):
        write_attention_sheet(tmp_path / "bad.png", s.frames[0], words2[:-1], maps2)
    with pytest.raises(ConfigError, match="spatial"):
        fitted[0].attention(fitted[1].frames[0])  # a captioner without spatial attention
    with pytest.raises(DataError, match="n_frames, height, width"):
        est.attention(s.frames[:2])


@pytest.mark.filterwarnings("ignore:conv_ae")
def test_frame_encoder_initialised_from_conv_ae():
    ae = create_model("conv_ae", "tutorial", input_shape=(1, 28, 28))
    cap = create_model("video_captioner", "pooled", input_shape=(4, 16, 16), vocab_size=10)
    cap.init_frame_encoder(ae)
    assert torch.equal(cap.cnn[0].weight, ae.encoder[0].weight)
    with pytest.raises(ConfigError, match="pooled"):
        create_model("video_captioner", input_shape=(4, 16, 16), vocab_size=10).init_frame_encoder(ae)
    wide = create_model("conv_ae", "wide", input_shape=(1, 28, 28))
    with pytest.raises(ConfigError, match="do not match"):
        cap.init_frame_encoder(wide)


# -- the task ------------------------------------------------------------------------------------
def test_fitted_captioner_predicts_evaluates_and_round_trips(fitted, tmp_path):
    est, s = fitted
    assert est.n_epochs_ == 3 and len(est.history_) == 3 and "val_exact_match" in est.history_[-1]
    w, idx = est.model_.word_weight, est.vocab_.index
    assert w[idx["the"]] < w[idx[str(s.digits[0, 0])]] <= 10 * w[w > 0].mean()  # rare words weigh more
    pred = est.predict(s.frames[:5])
    assert len(pred) == 5 and all(isinstance(p, str) for p in pred)
    assert est.caption(s.frames[0]) == pred[0]
    rep = est.evaluate(s.frames[:20], s.captions[:20], beam=2)
    assert {"exact_match", "bleu4", "digit_accuracy", "direction_accuracy", "bounce_accuracy"} <= set(rep)
    assert 0 <= rep["bleu4"] <= 1 and rep["n_clips"] == 20
    aekit.save(est, tmp_path / "cap")
    doc = json.loads((tmp_path / "cap" / "aekit.json").read_text())
    assert doc["kind"] == "video_captioner" and "the" in doc["fitted"]["vocabulary"]["tokens"]
    again = aekit.load(tmp_path / "cap")
    assert again.predict(s.frames[:5]) == pred
    with pytest.raises(ModelFileError, match="captioner"):
        (tmp_path / "cap" / "aekit.json").write_text(json.dumps({**doc, "model_name": "nope"}))
        from aekit.cli.caption import _load_run

        _load_run(tmp_path / "cap")


def test_bad_input_gives_clear_errors(fitted, small_digits):
    est, s = fitted
    with pytest.raises(NotFittedError):
        VideoCaptioner().predict(s.frames)
    with pytest.raises(DataError, match="n_clips, n_frames, height, width"):
        est.predict(s.frames[0])  # one clip without the batch axis
    with pytest.raises(DataError, match="20x20"):
        est.predict(np.zeros((1, FRAMES, 24, 24), np.uint8))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        est.predict(s.frames[:2].astype(np.float32))  # 0-255 floats
    with pytest.raises(DataError, match="never saw"):
        est.evaluate(s.frames[:1], ["the digit 3 moves sideways"])
    assert est.evaluate(s.frames[:1], ["the digit 3 moves sideways"], allow_unknown=True)["n_clips"] == 1
    with pytest.raises(DataError, match="empty caption"):
        VideoCaptioner(epochs=1, **TINY).fit(s.frames[:4], ["a", "b", "", "c"])
    with pytest.raises(DataError, match="4 clips but 3 captions"):
        VideoCaptioner(epochs=1, **TINY).fit(s.frames[:4], ["a", "b", "c"])
    with pytest.raises(ConfigError, match="beam"):
        est.predict(s.frames[:1], beam=0)


# -- the command line ----------------------------------------------------------------------------
def test_cli_make_data_train_evaluate_predict(tmp_path, capsys, monkeypatch):
    pytest.importorskip("aekit.data")
    try:
        from aekit.video import mnist_digits

        mnist_digits("test")
    except aekit.errors.DataError:
        pytest.skip("MNIST is not in $AEKIT_DATA_HOME")
    data, run = tmp_path / "data", tmp_path / "run"
    code, out = run_cli(capsys, "caption", "make-data", "--n-train", 48, "--n-test", 8, "--frames", 8,
                        "--size", 40, "--examples", 2, "--out", data)
    assert code == 0, out
    assert (data / "train.npz").is_file() and (data / "examples" / "test_001.gif").is_file()
    assert_fails(capsys, ["caption", "make-data", "--out", data], "already exists")
    code, out = run_cli(capsys, "caption", "train", "--data", data, "--out", run, "--epochs", 1, "--preset", "frames",
                        "--channels", "4,8", "--hidden", 16, "--frame-dim", 16, "--quiet")
    assert code == 0, out
    assert {"aekit.json", "model.safetensors", "metrics.json", "history.csv", "examples.png"} <= {
        p.name for p in run.iterdir()}
    code, out = run_cli(capsys, "caption", "evaluate", run, "--data", data, "--out", tmp_path / "m.json")
    assert code == 0, out
    rep = json.loads((tmp_path / "m.json").read_text())
    assert {"exact_match", "bleu4", "digit_accuracy", "direction_accuracy"} <= set(rep)
    monkeypatch.chdir(tmp_path)
    code, out = run_cli(capsys, "caption", "predict", run, "--clip", data / "examples" / "test_000.gif")
    assert code == 0 and "strip" in out, out
    assert (tmp_path / "test_000_caption.png").is_file()
    (tmp_path / "bad.gif").write_bytes(b"nope")
    assert_fails(capsys, ["caption", "predict", run, "--clip", tmp_path / "bad.gif"], "not a readable gif")
    np.save(tmp_path / "small.npy", np.zeros((8, 20, 20), np.uint8))
    assert_fails(capsys, ["caption", "predict", run, "--clip", tmp_path / "small.npy"], "40x40")
    assert_fails(capsys, ["caption", "evaluate", tmp_path, "--data", data, "--out", tmp_path / "x.json"],
                 "not an aekit")
    assert_fails(capsys, ["caption", "predict", run, "--clip", data / "examples" / "test_000.gif",
                          "--attention", tmp_path / "a.png"], "spatial attention")
    # spatial attention (the default): the run and the prediction get an attention sheet
    code, out = run_cli(capsys, "caption", "train", "--data", data, "--out", tmp_path / "sp", "--epochs", 1,
                        "--channels", "4,8", "--hidden", 16, "--frame-dim", 16, "--quiet")
    assert code == 0, out
    assert (tmp_path / "sp" / "attention.png").is_file()
    assert json.loads((tmp_path / "sp" / "aekit.json").read_text())["model_config"]["spatial_attention"] is True
    assert_fails(capsys, ["caption", "train", "--data", data, "--out", tmp_path / "fb", "--frame-bag",
                          "--preset", "wide"], "give one of them")
    code, out = run_cli(capsys, "caption", "predict", tmp_path / "sp", "--clip", data / "examples" / "test_000.gif")
    assert code == 0 and "attention" in out, out
    assert (tmp_path / "test_000_attention.png").is_file()
