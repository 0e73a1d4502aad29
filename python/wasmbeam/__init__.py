"""wasmbeam for Beam Python users.

PTransforms that build wasmbeam's URNs inside an ordinary ``apache_beam``
pipeline, so that ``--runner=PortableRunner --job_endpoint=HOST:PORT``
pointed at ``wasmbeam serve`` runs it:

* :class:`WasmParDo` – a DoFn compiled to a WebAssembly component;
* :class:`WasmCombinePerKey` – a CombineFn compiled to a component;
* :class:`BuiltinCombinePerKey` – wasmbeam's native count/sum/mean/min/max;
* :class:`ReadFromText` / :class:`WriteToText` – runner-native text IO
  (paths are read and written by the server, on the server's machine).

Component files become dependencies of a WASM environment, which the Beam
client stages through the job server's artifact service; nothing else needs
configuring. Ordinary Python DoFns (``beam.Map``, ``beam.Create``, ...) are
pickled Python, which wasmbeam refuses with a message that names them.
"""

from wasmbeam.transforms import (  # noqa: F401
    BuiltinCombinePerKey,
    GenerateSequence,
    ReadFromText,
    WasmCombinePerKey,
    WasmParDo,
    WriteToText,
)
from wasmbeam.runner import add_token  # noqa: F401

__all__ = [
    "BuiltinCombinePerKey",
    "GenerateSequence",
    "ReadFromText",
    "WasmCombinePerKey",
    "WasmParDo",
    "WriteToText",
    "add_token",
]
