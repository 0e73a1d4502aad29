"""The identity DoFn in Python, for the per-element overhead benchmark."""
import wasmbeam_guest as wb


class Identity(wb.DoFn):
    def process(self, element, out):
        out.emit(element.value)


wb.export_dofn(Identity)
