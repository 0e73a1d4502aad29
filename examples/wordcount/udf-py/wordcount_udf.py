"""Wordcount's user functions in Python, one component with two modes (its
config), byte for byte the same as the Rust version in ../udf:

* split: a line of text -> one kv<string_utf8, varint> (word, 1) per word;
* format: kv<string_utf8, varint> (word, count) -> the line "word: count".

Words are maximal runs of letters, digits and apostrophes.
"""
import re

import wasmbeam_guest as wb
from wasmbeam_guest import coders, metrics

WORDS = re.compile(r"(?:[^\W_]|')+")
# For ASCII lines: every byte that cannot be in a word becomes a space, so
# bytes.split() (C code, no regex) returns exactly the words.
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'")
ASCII_TO_SPACES = bytes(b if b in _WORD_BYTES else 0x20 for b in range(256))
ONE = coders.encode_varint(1)
# kv<string_utf8, varint> is the nested word (length, bytes) then varint 1;
# lengths below 128 are one byte.
LENGTH = [bytes((n,)) for n in range(128)]


class WordCount(wb.DoFn):
    def __init__(self, setup):
        mode = setup.config_str()
        if mode not in ("split", "format"):
            raise wb.UdfError(f"unknown mode {mode!r}: use split or format")
        self.split = mode == "split"
        self.lines = 0

    def process(self, element, out):
        if self.split:
            self.lines += 1
            line = element.value
            if line.isascii():
                words = line.translate(ASCII_TO_SPACES).split()
            else:
                words = [w.encode("utf-8") for w in WORDS.findall(line.decode("utf-8"))]
            out.emit_all([
                (LENGTH[len(w)] if len(w) < 128 else coders.encode_varint(len(w))) + w + ONE
                for w in words
            ])
        else:
            word, rest = coders.split_kv(element.value)
            out.emit(b"%s: %d" % (word, coders.varint(rest)))

    def finish_bundle(self, out):
        # One counter update per bundle instead of one per line.
        if self.lines:
            metrics.counter("wordcount/lines", self.lines)
            self.lines = 0


wb.export_dofn(WordCount)

