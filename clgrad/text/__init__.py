"""clgrad.text: character and byte-level BPE tokenizers and a Vocab, in pure Python."""
from .tokenizers import ByteBPETokenizer, CharTokenizer, get_tokenizer
from .vocab import Vocab, build_vocab_from_iterator, vocab

__all__ = ["ByteBPETokenizer", "CharTokenizer", "get_tokenizer", "Vocab",
           "build_vocab_from_iterator", "vocab"]
