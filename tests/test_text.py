"""Text: tokenizer, vocabulary, files, batching; seq2seq_ae and recursive_ae; the text tasks and CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import aekit
from aekit.errors import ConfigError, DataError, DataFileError, ModelFileError, NotFittedError
from aekit.models import create_model, list_models, list_presets, model_class
from aekit.tasks.text import SentimentRAE, TextAutoencoder
from aekit.text import (
    EOS,
    PAD,
    UNK,
    Vocabulary,
    class_names_for,
    encode_batch,
    read_labels,
    read_lines,
    tokenize,
    truncate,
)

TEXT_MODELS = [n for n in list_models() if getattr(model_class(n), "input_kind", None) == "tokens"]


# -- text basics -----------------------------------------------------------------------------------
def test_tokenizer_lowercases_and_splits_punctuation():
    assert tokenize("It's a well-made, FUNNY film!") == ["it's", "a", "well-made", ",", "funny", "film", "!"]
    assert tokenize("it 's good .") == ["it", "'s", "good", "."]  # MR's pre-tokenised clitics
    assert tokenize("ﬁne\u200b\x07 ｆｉｌｍ") == ["fine", "film"]  # NFKC; control/zero-width chars dropped
    assert tokenize("   ") == []
    assert tokenize("great 😀") == ["great", "😀"]  # an unknown symbol is a token (-> <unk> later)


def test_vocabulary_min_count_unknown_and_json():
    sents = [["a", "b", "a"], ["a", "c"], ["b"]]
    v = Vocabulary.build(sents, min_count=2)
    assert v.tokens[4:] == ["a", "b"] and len(v) == 6
    assert v.encode(["a", "c", "zzz"]) == [4, UNK, UNK]
    assert v.decode([4, 5, EOS, 4]) == ["a", "b"]
    assert v.unknown_rate(sents) == pytest.approx(1 / 6)
    again = Vocabulary.from_json(json.loads(json.dumps(v.to_json())))
    assert again.tokens == v.tokens
    with pytest.raises(ModelFileError, match="vocabulary"):
        Vocabulary.from_json({"tokens": ["a", "b"]})
    with pytest.raises(DataError, match="min_count"):
        Vocabulary.build(sents, min_count=5)


def test_read_lines_splits_on_newline_only_and_names_bad_bytes(tmp_path):
    f = tmp_path / "mr.txt"
    f.write_bytes(b"caf\xe9 \x85 ok\r\nsecond line\n")  # latin-1 with a NEL byte (0x85) inside a line
    assert read_lines(f, encoding="latin-1") == ["caf\xe9 \x85 ok", "second line"]
    g = tmp_path / "bad.txt"
    g.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(DataFileError, match=r"bad\.txt, line 2: byte 0xff.*latin-1"):
        read_lines(g)
    with pytest.raises(DataFileError, match="no such file"):
        read_lines(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="encoding"):
        read_lines(f, encoding="no-such-codec")


def test_real_mr_files_decode_as_latin1():
    import os
    from pathlib import Path

    d = Path(os.environ.get("AEKIT_DATA_HOME", "")) / "mr_polarity"
    if not d.is_dir():
        pytest.skip("MR not in AEKIT_DATA_HOME")
    assert len(read_lines(d / "rt-polarity.pos", encoding="latin-1")) == 5331
    assert len(read_lines(d / "rt-polarity.neg", encoding="latin-1")) == 5331
    with pytest.raises(DataFileError, match="rt-polarity.pos, line"):
        read_lines(d / "rt-polarity.pos")


def test_labels_and_class_names(tmp_path):
    f = tmp_path / "y.txt"
    f.write_text("pos\nneg\n")
    assert read_labels(f, 2) == ["pos", "neg"]
    with pytest.raises(DataError, match="2 label"):
        read_labels(f, 3)
    assert class_names_for(["d/rt-polarity.neg", "d/rt-polarity.pos"]) == ["neg", "pos"]
    assert class_names_for(["good.txt", "bad.txt"]) == ["good", "bad"]
    assert class_names_for(["x.a", "y.b"]) == ["x.a", "y.b"]


def test_padding_and_truncation():
    v = Vocabulary.build([["a", "b", "c"]])
    ids = encode_batch(v, [["a"], ["a", "b", "c"]])
    assert ids.shape == (2, 3) and ids[0, 1:].eq(PAD).all()
    with pytest.warns(UserWarning, match="1 sentence.*longer than max_len=2"):
        assert truncate([["a"], ["a", "b", "c"]], 2) == [["a"], ["a", "b"]]


# -- models ------------------------------------------------------------------------------------------
def _ids(lengths, vocab=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=g)
    for i, n in enumerate(lengths):
        ids[i, n:] = PAD
    return ids


@pytest.mark.parametrize("name,preset", [(n, p) for n in TEXT_MODELS for p in [None, *list_presets(n)]])
def test_token_models_forward_backward(name, preset):
    assert set(TEXT_MODELS) == {"seq2seq_ae", "recursive_ae"}
    model = create_model(name, preset, vocab_size=30, input_shape=(12,))
    ids = _ids([5, 1, 3, 12])
    y = torch.tensor([0, 1, 1, 0]) if name == "recursive_ae" else ids.float()
    terms = model.loss((ids.float(), y))
    assert {"loss", "recon"} <= set(terms) and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no/invalid gradient for {missing}"
    assert model.encode(ids).shape == (4, *model.code_shape)


def test_text_models_reject_image_shapes():
    with pytest.raises(ConfigError, match="max_len"):
        create_model("seq2seq_ae", input_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="alpha"):
        create_model("recursive_ae", alpha=1.5)


def _hand_made_rae(weighted: bool):
    """Zero encoder and decoder weights: every parent is 0 and every reconstruction is 0, so a
    merge costs the (weighted) squared norms of its children."""
    m = create_model("recursive_ae", vocab_size=8, embed_dim=2, normalize=False, weighted=weighted)
    with torch.no_grad():
        for p in [*m.enc.parameters(), *m.dec.parameters()]:
            p.zero_()
        m.embed.weight[4:8] = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])  # |.|^2 = 4, 1, 1, 9
    return m


def test_tree_construction_on_a_hand_made_example():
    ids = torch.tensor([[4, 5, 6, 7]])
    # unweighted: costs 0.5 (|c1|^2 + |c2|^2): pairs 2.5, 1, 5 -> (w2 w3); then [4, 0, 9] -> (w1 p); then the root
    f = _hand_made_rae(False).build_trees(ids)
    assert f.positions[0].tolist() == [1, 0, 0]
    assert f.recon[0].tolist() == pytest.approx([1.0, 2.0, 4.5])
    # weighted by the words under each child: (w1 p) costs 1/3 * 4, the root 1/4 * 9
    f = _hand_made_rae(True).build_trees(ids)
    assert f.positions[0].tolist() == [1, 0, 0]
    assert f.recon[0].tolist() == pytest.approx([1.0, 4 / 3, 9 / 4])
    # the reverse sentence merges its mirror pairs
    assert _hand_made_rae(True).build_trees(torch.tensor([[7, 6, 5, 4]])).positions[0].tolist() == [1, 1, 0]


def test_recursive_ae_batched_equals_one_at_a_time():
    torch.manual_seed(1)
    m = create_model("recursive_ae", vocab_size=40, input_shape=(20,), init_std=0.5).double()
    lengths = [9, 1, 2, 14, 5, 3, 7]
    ids = _ids(lengths, vocab=40, seed=3)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1])
    f = m.build_trees(ids)
    assert f.active.sum(1).tolist() == [n - 1 for n in lengths]
    feats = m.encode(ids)
    batch_loss = m.loss((ids, y))["loss"]
    single_losses = []
    for i, n in enumerate(lengths):
        g = m.build_trees(ids[i : i + 1, :n])
        assert g.positions[0].tolist() == f.positions[i, : n - 1].tolist()
        torch.testing.assert_close(g.recon[0], f.recon[i, : n - 1])
        torch.testing.assert_close(g.nodes[0], f.nodes[i, : n - 1])
        torch.testing.assert_close(m.encode(ids[i : i + 1, :n])[0], feats[i])
        single_losses.append(m.loss((ids[i : i + 1, :n], y[i : i + 1]))["loss"])
    torch.testing.assert_close(batch_loss, torch.stack(single_losses).mean())


def test_seq2seq_batched_equals_one_at_a_time_and_beam1_is_greedy():
    torch.manual_seed(0)
    m = create_model("seq2seq_ae", "small", vocab_size=30, input_shape=(12,)).eval()
    lengths = [5, 1, 12, 3]
    ids = _ids(lengths)
    z = m.encode(ids)
    for i, n in enumerate(lengths):
        torch.testing.assert_close(m.encode(ids[i : i + 1, :n])[0], z[i], atol=1e-5, rtol=1e-4)
    assert torch.equal(m.decode(z), m.beam_decode(z, beam=1))
    out = m.beam_decode(z, beam=4)
    assert out.shape[0] == 4 and not (out == EOS).any()


# -- tasks ---------------------------------------------------------------------------------------------
def _toy_sentiment(n, seed):
    """Sentences of filler words with one or two sentiment words; the label follows the majority."""
    rng = np.random.default_rng(seed)
    good, bad = ["great", "superb", "moving", "funny"], ["dull", "awful", "tedious", "bland"]
    filler = ["the", "film", "is", "a", "story", "with", "plot", "and", "cast", "very"]
    sents, y = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(filler, size=int(rng.integers(2, 8))))
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(good if label else bad)))
        sents.append(" ".join(words))
        y.append("pos" if label else "neg")
    return sents, np.array(y)


@pytest.fixture(scope="module")
def rae():
    sents, y = _toy_sentiment(300, 0)
    return SentimentRAE(epochs=6, batch_size=32, lr=1e-2, threads=1).fit(sents, y)


def test_sentiment_rae_learns_a_toy_task(rae):
    test, y = _toy_sentiment(200, 1)
    assert rae.score(test, y) >= 0.9
    p = rae.predict_proba(test[:5])
    assert p.shape == (5, 2) and np.allclose(p.sum(1), 1)
    assert set(rae.predict(test)) <= {"neg", "pos"}
    assert rae.transform(test[:3]).shape == (3, 100)
    assert rae.history_[-1]["train_loss"] < rae.history_[0]["train_loss"]


def test_sentiment_rae_tree(rae):
    node = rae.tree("the film is superb")
    assert node.words == ("the", "film", "is", "superb")
    assert node.bracketed().count("(") == 3  # n - 1 merges
    assert node.label == "pos" and len(node.proba) == 2
    with torch.no_grad():
        f = rae.model_.build_trees(encode_batch(rae.vocab_, [tokenize("the film is superb")]))
    assert [c.text for c in node.children] != [] and float(f.recon[0, -1]) == pytest.approx(node.recon_error)
    text = str(node)
    assert text.splitlines()[0].endswith("the film is superb") and "└── " in text
    assert rae.tree("superb").children == ()
    assert json.loads(json.dumps(node.to_dict()))["children"][0]["text"]


def test_sentiment_rae_save_load_roundtrip(rae, tmp_path):
    test, _ = _toy_sentiment(20, 2)
    aekit.save(rae, tmp_path / "rae")
    back = aekit.load(tmp_path / "rae")
    assert isinstance(back, SentimentRAE)
    np.testing.assert_allclose(back.predict_proba(test), rae.predict_proba(test), rtol=1e-6)
    assert str(back.tree(test[0])) == str(rae.tree(test[0]))
    doc = json.loads((tmp_path / "rae" / "aekit.json").read_text())
    doc["fitted"]["vocabulary"]["tokens"].pop()
    (tmp_path / "rae" / "aekit.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="vocabulary"):
        aekit.load(tmp_path / "rae")


def test_sentiment_rae_bad_input(rae):
    sents, y = _toy_sentiment(20, 3)
    with pytest.raises(DataError, match="no tokens"):
        SentimentRAE(epochs=1).fit([*sents[:-1], "  "], y)
    with pytest.raises(DataError, match="one label per sentence"):
        SentimentRAE(epochs=1).fit(sents, y[:-1])
    with pytest.raises(DataError, match="one class"):
        SentimentRAE(epochs=1).fit(sents, ["pos"] * len(sents))
    with pytest.raises(DataError, match="single string"):
        rae.predict("the film is superb")
    with pytest.raises(NotFittedError):
        SentimentRAE().predict(sents)
    with pytest.warns(UserWarning, match="truncated"):
        rae.predict([" ".join(["superb"] * 150)])
    assert rae.predict(["ünknöwn wörds 😀 !!"]).shape == (1,)  # unknown words and symbols are <unk>


def test_sentiment_rae_ensemble_averages_members(tmp_path):
    sents, y = _toy_sentiment(96, 7)
    ens = SentimentRAE(n_models=2, epochs=1, batch_size=32, lr=1e-2, threads=1).fit(sents, y)
    assert len(ens.models_) == 2 and ens.model_ is ens.models_[0]
    w0, w1 = (m.embed.weight for m in ens.models_)
    assert not torch.allclose(w0, w1)  # each member starts from its own random word vectors
    assert ens.coef_.shape == (2, 1, 100) and ens.feature_mean_.shape == (2, 100)
    assert {r["member"] for r in ens.history_} == {0, 1}
    test, _ = _toy_sentiment(12, 8)
    per_member = ens.member_proba(test)
    assert per_member.shape == (2, 12, 2) and not np.allclose(per_member[0], per_member[1])
    np.testing.assert_allclose(ens.predict_proba(test), per_member.mean(0))
    p = ens.predict_proba(test)[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-ens.decision_function(test))), p, rtol=1e-6)
    assert ens.transform(test).shape == (12, 200)
    aekit.save(ens, tmp_path / "ens")
    back = aekit.load(tmp_path / "ens")
    np.testing.assert_allclose(back.predict_proba(test), ens.predict_proba(test), rtol=1e-6)
    with pytest.raises(ConfigError, match="n_models"):
        SentimentRAE(n_models=0).fit(sents, y)


def test_sentiment_rae_cross_fit_classifies_held_out_sentences(tmp_path):
    """cross_fit: member m trains without chunk m; its classifier is fit on chunk m only."""
    sents, y = _toy_sentiment(100, 11)
    est = SentimentRAE(n_models=2, cross_fit=True, epochs=1, batch_size=32, lr=1e-2, threads=1)
    y_idx = np.unique(y, return_inverse=True)[1]
    chunks = est._chunks(y_idx)  # depends on the labels and the seed only
    assert sorted(np.bincount(chunks).tolist()) == [20] * 5
    assert all(abs(np.bincount(y_idx[chunks == c]) - np.bincount(y_idx) / 5).max() <= 1 for c in range(5))
    in0, in1 = np.flatnonzero(chunks == 0)[:2], np.flatnonzero(chunks == 1)[:1]
    for i in in0:  # a word only member 0's held-out chunk has: member 0 never trains on it
        sents[i] = sents[i] + " zyzzyva"
    for i in (in0[0], in1[0]):  # twice in all (in the vocabulary), but each member trains on it once
        sents[i] = sents[i] + " qwertz"
    est.fit(sents, y)
    assert "zyzzyva" in est.vocab_
    w = est.vocab_.encode(["zyzzyva"])[0]
    e0, e1 = (m.embed.weight for m in est.models_)
    assert torch.equal(e0[w], e0[UNK]) and not torch.equal(e1[w], e1[UNK])
    q = est.vocab_.encode(["qwertz"])[0]
    assert q != UNK and torch.equal(e0[q], e0[UNK]) and torch.equal(e1[q], e1[UNK])  # below min_count=2
    for m in range(2):  # the standardisation (and the classifier) of member m: its held-out chunk's
        held = [s for s, c in zip(sents, chunks) if c == m]
        f = est._member_features(est.models_[m], est._sentence_ids(held, "test"))
        np.testing.assert_allclose(est.feature_mean_[m], f.mean(0), rtol=1e-5, atol=1e-7)
    full = SentimentRAE(n_models=2, epochs=1, batch_size=32, lr=1e-2, threads=1).fit(sents, y)
    assert not np.allclose(full.feature_mean_, est.feature_mean_)
    assert est.predict_proba(sents[:4]).shape == (4, 2)
    aekit.save(est, tmp_path / "cf")
    back = aekit.load(tmp_path / "cf")
    assert back.cross_fit is True
    np.testing.assert_allclose(back.predict_proba(sents), est.predict_proba(sents), rtol=1e-6)
    with pytest.raises(DataError, match="cross_fit"):
        SentimentRAE(cross_fit=True, epochs=1).fit(sents[:8], y[:8])


def test_sentiment_rae_reads_single_model_files(rae):
    """Files written before ensembles hold 2-D classifier arrays; they load as a one-member ensemble."""
    meta, tensors = rae._aekit_state()
    old = {k: (v[0] if k.startswith("classifier.") else v) for k, v in tensors.items()}
    back = SentimentRAE._aekit_from_state(json.loads(json.dumps(meta)), old, where="old")
    test, _ = _toy_sentiment(10, 9)
    np.testing.assert_allclose(back.predict_proba(test), rae.predict_proba(test), rtol=1e-6)


def test_text_autoencoder_loss_decreases_and_reconstructs(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    sents = [" ".join(rng.choice(words, size=int(rng.integers(2, 5)))) for _ in range(300)]
    ae = TextAutoencoder(preset="small", epochs=25, lr=1e-2, batch_size=32, threads=1).fit(sents[:200])
    losses = [r["train_loss"] for r in ae.history_]
    assert losses[-1] < 0.5 * losses[0]
    assert ae.evaluate(sents[:100])["token_accuracy"] > 0.8  # training sentences
    held_out = ae.evaluate(sents[200:])  # random word strings: nothing to guess, chance is ~1/12
    assert held_out["token_accuracy"] > 0.35 and held_out["exact_match"] > 0.15
    codes = ae.transform(sents[:7])
    assert codes.shape == (7, 32) and np.isfinite(codes).all()
    assert ae.reconstruct(sents[:3], beam=3)[0].split()[0] in words
    aekit.save(ae, tmp_path / "ae")
    back = aekit.load(tmp_path / "ae")
    np.testing.assert_allclose(back.transform(sents[:7]), codes, rtol=1e-5, atol=1e-6)
    assert back.reconstruct(sents[:5]) == ae.reconstruct(sents[:5])


def test_recursive_ae_reconstruction_decreases_unsupervised():
    """alpha=1 (the ``unsupervised`` preset) with no labels: only the autoencoder is trained."""
    from aekit.training import TrainConfig, Trainer

    sents, _ = _toy_sentiment(200, 4)
    v = Vocabulary.build([tokenize(s) for s in sents])
    ids = encode_batch(v, [tokenize(s) for s in sents], pad_to=12).float()
    m = create_model("recursive_ae", "unsupervised", vocab_size=len(v), input_shape=(12,), init_std=0.5)
    hist = Trainer(TrainConfig(epochs=8, lr=1e-2, batch_size=50, progress=False, device="cpu")).fit(m, ids)
    recon = [r["train_recon"] for r in hist]
    assert recon[-1] < 0.5 * recon[0]


# -- CLI -------------------------------------------------------------------------------------------------
def test_cli_train_evaluate_predict_tree(tmp_path, capsys):
    from aekit.cli.main import main

    sents, y = _toy_sentiment(240, 5)
    neg, pos = tmp_path / "toy.neg", tmp_path / "toy.pos"
    neg.write_bytes(("\n".join(s for s, c in zip(sents, y) if c == "neg") + "\n\n").encode("latin-1"))
    pos.write_bytes(("\n".join(s for s, c in zip(sents, y) if c == "pos") + "\n").encode("latin-1"))
    run = tmp_path / "run"
    args = ["text", "train", "--model", "recursive_ae", "--data", str(neg), str(pos), "--out", str(run),
            "--epochs", "6", "--lr", "0.01", "--n-models", "1", "--threads", "1", "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    assert {"aekit.json", "model.safetensors", "metrics.json", "history.csv"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "metrics.json").read_text())["classes"] == ["neg", "pos"]
    assert json.loads((run / "aekit.json").read_text())["params"]["n_models"] == 1
    assert main(args) == 2  # the run folder exists
    crossed = tmp_path / "crossed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*args[:5], str(neg), str(pos), "--out", str(crossed), "--epochs", "1", "--n-models", "2",
                     "--cross-fit", "--threads", "1", "--quiet"]) == 0
    assert json.loads((crossed / "aekit.json").read_text())["params"]["cross_fit"] is True
    assert main(["text", "train", "--model", "seq2seq_ae", "--data", str(neg), "--out", str(tmp_path / "s2s"),
                 "--cross-fit"]) == 2
    test, ty = _toy_sentiment(100, 6)
    tneg, tpos = tmp_path / "t.neg", tmp_path / "t.pos"
    tneg.write_text("\n".join(s for s, c in zip(test, ty) if c == "neg") + "\n")
    tpos.write_text("\n".join(s for s, c in zip(test, ty) if c == "pos") + "\n")
    out = tmp_path / "m.json"
    assert main(["text", "evaluate", str(run), "--data", str(tneg), "--data", str(tpos), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] >= 0.85
    capsys.readouterr()
    assert main(["text", "predict", str(run), "--input", str(tpos)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == int((ty == "pos").sum()) and lines[0].split("\t")[0] in ("neg", "pos")
    assert main(["text", "tree", str(run), "the film is dull"]) == 0
    assert "the film is dull" in capsys.readouterr().out
    labels = tmp_path / "labels.txt"
    labels.write_text("pos\n")
    assert main(["text", "evaluate", str(run), "--data", str(tneg), "--labels", str(labels), "--out", str(out)]) == 2
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good film\nbad \xe9 film\n")
    assert main(["text", "predict", str(run), "--input", str(bad)]) == 2
    assert "bad.txt, line 2" in capsys.readouterr().out
