"""The identity DoFn in Python, for the per-element overhead benchmark.
With config "emit-str" it emits text instead of bytes from the third
element on, which the SDK must report as a bad output of that element.
With config "membomb" it allocates until memory runs out."""
import wasmbeam_guest as wb


class Identity(wb.DoFn):
    def __init__(self, setup):
        self.text = setup.config == b"emit-str"
        self.bomb = setup.config == b"membomb"

    def process(self, element, out):
        if self.bomb:
            hog = []
            while True:
                hog.append(bytearray(1 << 20))
        if self.text and element.index >= 2:
            out.emit(element.value.decode())
        else:
            out.emit(element.value)


wb.export_dofn(Identity)
