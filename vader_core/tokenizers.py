"""Tokenizers that work offline.

The CLIP BPE vocabulary ships inside open_clip (``bpe_simple_vocab_16e6.txt.gz``); from it we build
the exact transformers ``CLIPTokenizer`` of OpenAI CLIP (49,408 tokens), with no download.

:func:`tiny_t5_tokenizer` is the small T5 / UMT5 tokenizer of every tiny test model with a T5-family text
encoder (Wan, Open-Sora, CogVideoX, LTX-Video, ...): a real transformers ``T5Tokenizer``, built in code.
"""

from __future__ import annotations

import functools
import gzip
import string

# The CLIP vocabulary: 256 byte symbols, the same with an end-of-word mark, the merges, 2 specials.
_NUM_MERGES = 49152 - 256 - 2


@functools.cache
def clip_tokenizer(model_max_length: int = 77) -> object:
    """A transformers ``CLIPTokenizer`` equal to ``openai/clip-vit-large-patch14``'s, built offline."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    # the tokenizers backend takes merges as pairs; transformers annotates only the file-path and string forms
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)  # type: ignore[arg-type]


#: Whole-word pieces of :func:`tiny_t5_tokenizer` (the words of the test prompts); other text falls back to characters.
TINY_T5_WORDS: tuple[str, ...] = tuple(
    (
        "a an the of in on at with and riding playing surfing wave cat dog panda bike chess red blue green "
        "running flying bird car city street night sea boat kite sky tree forest river horse man woman "
        "robot fashion model walking beautiful"
    ).split()
)


@functools.cache
def tiny_t5_tokenizer(model_max_length: int = 512) -> object:
    """A transformers ``T5Tokenizer`` for tiny test models: a unigram model, like T5's and umt5-xxl's (``<pad>`` 0,
    ``</s>`` 1, ``<unk>`` 2, ``</s>`` appended), over the words of :data:`TINY_T5_WORDS`, ASCII characters and
    punctuation, built offline. Size the tiny encoder's ``vocab_size`` as ``len(tokenizer)``; it saves and reloads
    with ``save_pretrained`` / ``AutoTokenizer.from_pretrained`` like a released one."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w, -4.0) for w in TINY_T5_WORDS]
    chars = string.ascii_letters + string.digits + string.punctuation
    pieces += [(c, -8.0) for c in chars] + [("\u2581" + c, -9.0) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)
