"""Wordcount's user functions in Python, one component with two modes (its
config), byte for byte the same as the Rust version in ../udf:

* split: a line of text -> one kv<string_utf8, varint> (word, 1) per word;
* format: kv<string_utf8, varint> (word, count) -> the line "word: count".

Words are maximal runs of letters, digits and apostrophes.
"""
import re

import wasmbeam_guest as wb
from wasmbeam_guest import coders, metrics

WORD = re.compile(r"[^\W_]+|'", re.UNICODE)
WORDS = re.compile(r"(?:[^\W_]|')+", re.UNICODE)
ONE = coders.encode_varint(1)


class WordCount(wb.DoFn):
    def __init__(self, setup):
        mode = setup.config_str()
        if mode not in ("split", "format"):
            raise wb.UdfError(f"unknown mode {mode!r}: use split or format")
        self.split = mode == "split"

    def process(self, element, out):
        if self.split:
            metrics.counter("wordcount/lines")
            line = element.value.decode("utf-8")
            for word in WORDS.findall(line):
                out.emit(coders.encode_kv(word, ONE))
        else:
            word, rest = coders.split_kv(element.value)
            out.emit(b"%s: %d" % (word, coders.varint(rest)))


wb.export_dofn(WordCount)
