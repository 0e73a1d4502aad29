"""wasmbeam's Python guest SDK: write a DoFn or CombineFn as a plain Python
class; `wasmbeam build DIR` bundles it with CPython into a WebAssembly
component (componentize-py) implementing wit/udf.wit.

    import wasmbeam_guest as wb

    class Upper(wb.DoFn):
        def process(self, element, out):
            out.emit(element.value.upper())

    wb.export_dofn(Upper)

Pure Python only: no C extensions (so no numpy) inside the component.
Element values are the encoded bytes of the PCollection's coder in the outer
context; `wasmbeam_guest.coders` reads and writes Beam's encodings.
"""

from wasmbeam_guest.api import (  # noqa: F401
    CombineFn,
    DoFn,
    Element,
    Emitter,
    Setup,
    SideInput,
    UdfError,
    Window,
    export_combinefn,
    export_dofn,
)
from wasmbeam_guest.state import Stateful  # noqa: F401
