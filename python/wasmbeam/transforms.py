"""PTransforms that expand to wasmbeam's URNs (see docs/urns.md)."""

import hashlib
import os
import typing

import apache_beam as beam
from apache_beam import coders, pvalue
from apache_beam.portability import common_urns
from apache_beam.transforms.core import Windowing
from apache_beam.typehints import native_type_compatibility
from apache_beam.transforms.window import GlobalWindows
from apache_beam.portability.api import beam_runner_api_pb2 as rapi

from wasmbeam import _proto

WASM_DOFN = "wasmbeam:dofn:wasm:v1"
WASM_COMBINEFN = "wasmbeam:combinefn:wasm:v1"
BUILTIN_COMBINEFN = "wasmbeam:combinefn:builtin:v1"
WASM_ENVIRONMENT = "wasmbeam:env:wasm:v1"
READ_TEXT = "wasmbeam:transform:read_text:v1"
WRITE_TEXT = "wasmbeam:transform:write_text:v1"
GENERATE_SEQUENCE = "wasmbeam:transform:generate_sequence:v1"

_BUILTINS = {
    "count": int,
    "sum": int,
    "sum_int64": int,
    "min": int,
    "max": int,
    "min_int64": int,
    "max_int64": int,
    "sum_double": float,
    "mean": float,
    "min_double": float,
    "max_double": float,
}


class _Component:
    """A component file, hashed once, and the WASM environment that holds it."""

    def __init__(self, path):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(
                f"wasmbeam: component {path!r} is not a file; build it with "
                "`wasmbeam build DIR -o FILE.wasm`")
        self.path = os.path.abspath(path)
        with open(self.path, "rb") as f:
            self.sha256 = hashlib.sha256(f.read()).hexdigest()
        self.staged_name = f"{self.sha256}.wasm"
        self.env_id = f"wasmbeam-wasm-{self.sha256[:16]}"

    def environment(self):
        dep = rapi.ArtifactInformation(
            type_urn=common_urns.artifact_types.FILE.urn,
            type_payload=rapi.ArtifactFilePayload(
                path=self.path, sha256=self.sha256).SerializeToString(),
            role_urn=common_urns.artifact_roles.STAGING_TO.urn,
            role_payload=rapi.ArtifactStagingToRolePayload(
                staged_name=self.staged_name).SerializeToString(),
        )
        return rapi.Environment(urn=WASM_ENVIRONMENT, dependencies=[dep])

    def payload(self, export, config, outputs=()):
        return _proto.wasm_udf_payload(
            artifact=self.staged_name,
            sha256=self.sha256,
            export=export,
            config=_config_bytes(config),
            outputs=list(outputs),
        )

    def bind(self, pipeline):
        """Run this transform in the component's WASM environment.

        Called from ``expand``, where the pipeline's current node is the
        transform being applied.
        """
        pipeline._current_transform().environment_id = self.env_id

    def register(self, context):
        """Put the environment into the pipeline proto being written."""
        context.environments.put_proto(
            self.env_id, self.environment(), ignore_duplicates=True)


def _config_bytes(config):
    if config is None:
        return b""
    if isinstance(config, str):
        return config.encode("utf-8")
    if isinstance(config, (bytes, bytearray)):
        return bytes(config)
    raise TypeError(
        f"wasmbeam: config must be str or bytes, not {type(config).__name__}")


class ReadFromText(beam.PTransform):
    """Lines of text files, read by the runner (globs; ``.gz`` is decompressed).

    Paths are resolved on the server's machine; a multi-tenant server only
    allows paths under the tenant's data directories.

    With ``watch_secs``, the patterns are watched: every ``watch_secs``
    seconds they are matched again, and each new file is read once it is
    complete (its size and modification time unchanged over one poll; write
    files elsewhere and move them in). Lines are timestamped with the poll
    that read them. The read is then unbounded: the job runs as a stream
    until it is drained or cancelled.
    """

    def __init__(self, file_pattern, watch_secs=None, label=None):
        super().__init__(label)
        self._patterns = ([file_pattern] if isinstance(file_pattern, str)
                          else list(file_pattern))
        if not self._patterns:
            raise ValueError("wasmbeam.ReadFromText needs at least one pattern")
        self._watch_ms = 0
        if watch_secs is not None:
            self._watch_ms = int(round(watch_secs * 1000))
            if self._watch_ms < 1:
                raise ValueError("wasmbeam.ReadFromText needs watch_secs >= 0.001")

    def expand(self, pbegin):
        if not isinstance(pbegin, pvalue.PBegin):
            raise TypeError("wasmbeam.ReadFromText is a root transform: "
                            "apply it to the pipeline")
        return pvalue.PCollection(pbegin.pipeline, element_type=str,
                                  is_bounded=not self._watch_ms)

    def get_windowing(self, unused_inputs):
        return Windowing(GlobalWindows())

    def to_runner_api_parameter(self, unused_context):
        return READ_TEXT, _proto.read_text_payload(self._patterns, self._watch_ms)


class GenerateSequence(beam.PTransform):
    """The integers ``start, start + 1, ...``, one every ``period_secs``
    seconds of processing time from the moment the job starts, each
    timestamped with the time it was due, generated by the runner.

    Without ``stop`` the sequence is unbounded: the job runs as a stream
    until it is drained (``wasmbeam drain JOB``, or the Job API's Drain:
    every pending window then fires) or cancelled.
    """

    def __init__(self, start=0, stop=None, period_secs=1.0, label=None):
        super().__init__(label)
        period_ms = int(round(period_secs * 1000))
        if period_ms < 1:
            raise ValueError("wasmbeam.GenerateSequence needs period_secs >= 0.001")
        if stop is not None and stop < start:
            raise ValueError("wasmbeam.GenerateSequence: stop must not be below start")
        self._start, self._stop, self._period_ms = start, stop, period_ms

    def expand(self, pbegin):
        if not isinstance(pbegin, pvalue.PBegin):
            raise TypeError("wasmbeam.GenerateSequence is a root transform: "
                            "apply it to the pipeline")
        return pvalue.PCollection(pbegin.pipeline, element_type=int,
                                  is_bounded=self._stop is not None)

    def get_windowing(self, unused_inputs):
        return Windowing(GlobalWindows())

    def to_runner_api_parameter(self, unused_context):
        return GENERATE_SEQUENCE, _proto.generate_sequence_payload(
            self._start, self._stop, self._period_ms)


class WriteToText(beam.PTransform):
    """Writes ``str`` elements as lines to PREFIX-SSSSS-of-NNNNN SUFFIX.

    Files appear only when the whole job succeeds (staged, then renamed).
    Like Beam's own sink it returns a PCollection (Beam's client drops leaf
    transforms without outputs); wasmbeam does not fill it yet, and refuses
    pipelines that read it.
    """

    def __init__(self, file_path_prefix, file_name_suffix="", num_shards=1,
                 label=None):
        super().__init__(label)
        self._prefix = file_path_prefix
        self._suffix = file_name_suffix
        self._shards = int(num_shards)

    def expand(self, pcoll):
        out = pvalue.PCollection.from_(pcoll)
        out.element_type = str
        return out

    def to_runner_api_parameter(self, unused_context):
        return WRITE_TEXT, _proto.write_text_payload(
            self._prefix, self._suffix, self._shards)


class WasmParDo(beam.PTransform):
    """A ParDo whose DoFn is a WebAssembly component.

    Args:
      component: path of the ``.wasm`` file (see ``wasmbeam build``).
      config: str or bytes handed to the DoFn's ``setup``.
      output_type: element type of the main output (``str``, ``bytes``,
        ``int``, ``float``, ``typing.Tuple[str, int]``, ...); it picks the
        Beam coder the UDF must write.
      outputs: extra output tags after the main one, as a dict
        ``{tag: element_type}``; the result is then a dict of PCollections
        with the main output under ``"main"``.
      side_inputs: ``{tag: PCollection}`` handed to the UDF whole (iterable
        access) before its first bundle.
    """

    def __init__(self, component, config=None, output_type=bytes,
                 outputs=None, side_inputs=None, label=None):
        super().__init__(label)
        self._component = _Component(component)
        self._config = config
        self._output_type = output_type
        self._extra = dict(outputs or {})
        self._side = dict(side_inputs or {})
        for tag, pc in self._side.items():
            if not isinstance(pc, pvalue.PCollection):
                raise TypeError(
                    f"wasmbeam.WasmParDo: side input {tag!r} must be a "
                    "PCollection")
        if "main" in self._extra:
            raise ValueError("wasmbeam.WasmParDo: 'main' names the main output")

    def _named_inputs(self, main_inputs, side_inputs):
        named = {
            tag: pc
            for tag, pc in main_inputs.items()
            if isinstance(pc, pvalue.PCollection)
        }
        named.update(self._side)
        return named

    def _tags(self):
        # A lone output gets Beam Python's default tag, the string "None".
        return ["main"] + list(self._extra) if self._extra else ["None"]

    def expand(self, pcoll):
        self._component.bind(pcoll.pipeline)
        main = pvalue.PCollection.from_(pcoll)
        main.element_type = _beam_type(self._output_type)
        if not self._extra:
            return main
        result = {"main": main}
        for tag, ty in self._extra.items():
            pc = pvalue.PCollection.from_(pcoll)
            pc.element_type = _beam_type(ty)
            pc.tag = tag
            result[tag] = pc
        main.tag = "main"
        return result

    def to_runner_api_parameter(self, context):
        self._component.register(context)
        access = rapi.FunctionSpec(
            urn=common_urns.side_inputs.ITERABLE.urn)
        side = {
            tag: rapi.SideInput(access_pattern=access)
            for tag in self._side
        }
        udf = self._component.payload("dofn", self._config, self._tags())
        return common_urns.primitives.PAR_DO.urn, rapi.ParDoPayload(
            do_fn=rapi.FunctionSpec(urn=WASM_DOFN, payload=udf),
            side_inputs=side,
        )


def _beam_type(t):
    return native_type_compatibility.convert_to_beam_type(t)


def _kv_value_type(pcoll, who):
    t = pcoll.element_type
    args = getattr(t, "tuple_types", None)
    if args is None:
        args = typing.get_args(t)
    if len(args) != 2:
        raise TypeError(
            f"{who}: input must be typed as Tuple[K, V] (give the producing "
            f"transform output_type=typing.Tuple[...]), not {t}")
    return args[0]


class _CombinePerKey(beam.PTransform):

    def _accumulator_coder_id(self, context):
        return context.coders.get_id(coders.BytesCoder())

    def _out(self, pcoll, value_type):
        key = _kv_value_type(pcoll, type(self).__name__)
        out = pvalue.PCollection.from_(pcoll)
        out.element_type = _beam_type(typing.Tuple[key, value_type])
        return out


class WasmCombinePerKey(_CombinePerKey):
    """CombinePerKey whose CombineFn is a WebAssembly component.

    The runner lifts it: partial accumulators are built before the shuffle.
    ``output_type`` is the type of each key's combined value.
    """

    def __init__(self, component, config=None, output_type=bytes, label=None):
        super().__init__(label)
        self._component = _Component(component)
        self._config = config
        self._output_type = output_type

    def expand(self, pcoll):
        self._component.bind(pcoll.pipeline)
        return self._out(pcoll, self._output_type)

    def to_runner_api_parameter(self, context):
        self._component.register(context)
        udf = self._component.payload("combinefn", self._config)
        return common_urns.composites.COMBINE_PER_KEY.urn, rapi.CombinePayload(
            combine_fn=rapi.FunctionSpec(urn=WASM_COMBINEFN, payload=udf),
            accumulator_coder_id=self._accumulator_coder_id(context),
        )


class BuiltinCombinePerKey(_CombinePerKey):
    """wasmbeam's native combiners: count, sum, mean, min, max, and the
    ``_int64`` / ``_double`` variants (``sum`` sums int64 values)."""

    def __init__(self, name, label=None):
        super().__init__(label)
        if name not in _BUILTINS:
            raise ValueError(
                f"wasmbeam.BuiltinCombinePerKey: unknown combiner {name!r}; "
                f"use one of {sorted(_BUILTINS)}")
        self._name = name

    def expand(self, pcoll):
        return self._out(pcoll, _BUILTINS[self._name])

    def to_runner_api_parameter(self, context):
        return common_urns.composites.COMBINE_PER_KEY.urn, rapi.CombinePayload(
            combine_fn=rapi.FunctionSpec(
                urn=BUILTIN_COMBINEFN,
                payload=_proto.builtin_combine_payload(self._name)),
            accumulator_coder_id=self._accumulator_coder_id(context),
        )
