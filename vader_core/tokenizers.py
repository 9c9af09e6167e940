"""Tokenizers that work offline.

The CLIP BPE vocabulary ships inside open_clip (``bpe_simple_vocab_16e6.txt.gz``); from it we build
the exact transformers ``CLIPTokenizer`` of OpenAI CLIP (49,408 tokens), with no download.
"""

from __future__ import annotations

import functools
import gzip

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
