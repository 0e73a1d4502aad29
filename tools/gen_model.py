#!/usr/bin/env python3
"""Regenerate wasmbeam's copy of the Beam model from the pinned apache-beam wheel.

Beam's `.proto` sources are not in the wheel, but its `_pb2` modules carry the
compiled descriptors: every package, message, field number, label, type, oneof,
enum value option and service method. This script prints those descriptors back
as `.proto` text (schema facts only; the comments are ours), and writes the
standard URN strings from the `_pb2_urns` modules as Rust constants.

Run from the repository root, after `scripts/bootstrap.sh`:

    .venv/bin/python tools/gen_model.py

Outputs (committed):
    proto/org/apache/beam/model/**.proto
    crates/wasmbeam-proto/src/urns.rs

The conformance tests (`crates/wasmbeam-proto/tests/`) check the result
against the same wheel, so a hand edit that drifts from Beam fails CI.
"""
import importlib
import logging
import os
import re
import sys

logging.disable(logging.WARNING)

from google.protobuf import descriptor_pb2, text_format  # noqa: E402

API = "apache_beam.portability.api.org.apache.beam.model"

# The model files wasmbeam carries, by Beam proto path.
MODEL_FILES = [
    "pipeline/v1/beam_runner_api",
    "pipeline/v1/endpoints",
    "pipeline/v1/external_transforms",
    "pipeline/v1/metrics",
    "pipeline/v1/schema",
    "pipeline/v1/standard_window_fns",
    "job_management/v1/beam_job_api",
    "job_management/v1/beam_artifact_api",
    "job_management/v1/beam_expansion_api",
    "fn_execution/v1/beam_fn_api",
    "fn_execution/v1/beam_provision_api",
]

URN_MODULES = [
    "pipeline/v1/beam_runner_api",
    "pipeline/v1/external_transforms",
    "pipeline/v1/metrics",
    "pipeline/v1/schema",
    "pipeline/v1/standard_window_fns",
    "job_management/v1/beam_artifact_api",
    "fn_execution/v1/beam_fn_api",
]

LABELS = {
    descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL: "",
    descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED: "repeated ",
    descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED: "required ",
}

SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}


def load_module(path, suffix="_pb2"):
    return importlib.import_module(API + "." + path.replace("/", ".") + suffix)


def file_proto(path):
    fd = descriptor_pb2.FileDescriptorProto()
    load_module(path).DESCRIPTOR.CopyToProto(fd)
    return fd


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def option_value(field, value):
    if field.type == field.TYPE_MESSAGE:
        return "{ " + text_format.MessageToString(value, as_one_line=True) + " }"
    if field.type == field.TYPE_STRING:
        return quote(value)
    if field.type == field.TYPE_BOOL:
        return "true" if value else "false"
    if field.type == field.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    return str(value)


def options_list(opts):
    """Option assignments of an *Options message, extensions as `(full.name)`."""
    out = []
    for field, value in opts.ListFields():
        name = "(%s)" % field.full_name if field.is_extension else field.name
        values = value if field.is_repeated else [value]
        for v in values:
            out.append((name, option_value(field, v)))
    return out


def reserved_range(start, last):
    """`N` or `N to M` for an inclusive range."""
    return str(start) if start == last else "%d to %d" % (start, last)


def inline_options(opts):
    items = options_list(opts)
    if not items:
        return ""
    return " [" + ", ".join("%s = %s" % kv for kv in items) + "]"


class Printer:
    def __init__(self):
        self.lines = []

    def emit(self, depth, text=""):
        self.lines.append(("  " * depth + text) if text else "")

    def field_type(self, f, scope_maps):
        if f.type in SCALARS:
            return SCALARS[f.type]
        if f.type_name in scope_maps:
            k, v = scope_maps[f.type_name]
            return "map<%s, %s>" % (k, v)
        return f.type_name

    def field(self, depth, f, scope_maps):
        ftype = self.field_type(f, scope_maps)
        if ftype.startswith("map<"):
            label = ""
        elif f.proto3_optional:
            label = "optional "
        else:
            label = LABELS[f.label]
        self.emit(depth, "%s%s %s = %d%s;" % (label, ftype, f.name, f.number,
                                              inline_options(f.options)))

    def enum(self, depth, e):
        self.emit(depth, "enum %s {" % e.name)
        for name, val in options_list(e.options):
            self.emit(depth + 1, "option %s = %s;" % (name, val))
        for v in e.value:
            self.emit(depth + 1, "%s = %d%s;" % (v.name, v.number, inline_options(v.options)))
        for r in e.reserved_range:
            self.emit(depth + 1, "reserved %s;" % reserved_range(r.start, r.end))
        for n in e.reserved_name:
            self.emit(depth + 1, "reserved %s;" % quote(n))
        self.emit(depth, "}")

    def message(self, depth, m, full):
        self.emit(depth, "message %s {" % m.name)
        for name, val in options_list(m.options):
            self.emit(depth + 1, "option %s = %s;" % (name, val))
        maps = {}
        for n in m.nested_type:
            if n.options.map_entry:
                key, value = n.field[0], n.field[1]
                maps["%s.%s.%s" % (full, m.name, n.name)] = (
                    self.field_type(key, {}), self.field_type(value, {}))
        real_oneofs = {}
        for f in m.field:
            if f.HasField("oneof_index") and not f.proto3_optional:
                real_oneofs.setdefault(f.oneof_index, []).append(f)
        printed_oneofs = set()
        # Map entries are nested types too; protoc records nested types in
        # source order, so a nested message declared before a map field must
        # be printed before it to keep Beam's declaration order.
        entry_index = {"%s.%s.%s" % (full, m.name, n.name): i for i, n in enumerate(m.nested_type)}
        printed_nested = set()

        def nested_before(limit):
            for i, n in enumerate(m.nested_type[:limit]):
                if not n.options.map_entry and i not in printed_nested:
                    printed_nested.add(i)
                    self.message(depth + 1, n, "%s.%s" % (full, m.name))
        for f in m.field:
            if f.type_name in maps:
                nested_before(entry_index[f.type_name])
            if f.HasField("oneof_index") and not f.proto3_optional:
                idx = f.oneof_index
                if idx in printed_oneofs:
                    continue
                printed_oneofs.add(idx)
                od = m.oneof_decl[idx]
                self.emit(depth + 1, "oneof %s {" % od.name)
                for of in real_oneofs[idx]:
                    self.field(depth + 2, of, maps)
                self.emit(depth + 1, "}")
            else:
                self.field(depth + 1, f, maps)
        for e in m.enum_type:
            self.enum(depth + 1, e)
        nested_before(len(m.nested_type))
        for ext in m.extension:
            self.emit(depth + 1, "extend %s {" % ext.extendee)
            self.field(depth + 2, ext, {})
            self.emit(depth + 1, "}")
        for r in m.reserved_range:
            self.emit(depth + 1, "reserved %s;" % reserved_range(r.start, r.end - 1))
        for n in m.reserved_name:
            self.emit(depth + 1, "reserved %s;" % quote(n))
        self.emit(depth, "}")

    def service(self, s):
        self.emit(0, "service %s {" % s.name)
        for meth in s.method:
            cs = "stream " if meth.client_streaming else ""
            ss = "stream " if meth.server_streaming else ""
            self.emit(1, "rpc %s(%s%s) returns (%s%s);" % (
                meth.name, cs, meth.input_type, ss, meth.output_type))
        self.emit(0, "}")


def render_file(fd):
    p = Printer()
    p.emit(0, "// wasmbeam's copy of the Apache Beam 2.77 model: %s" % fd.name)
    p.emit(0, "// Generated by tools/gen_model.py from the descriptors in the")
    p.emit(0, "// apache-beam==2.77.0 wheel. Do not edit by hand: re-run the tool.")
    p.emit(0)
    p.emit(0, 'syntax = "%s";' % (fd.syntax or "proto2"))
    p.emit(0)
    p.emit(0, "package %s;" % fd.package)
    p.emit(0)
    for dep in fd.dependency:
        p.emit(0, "import %s;" % quote(dep))
    p.emit(0)
    for name, val in options_list(fd.options):
        p.emit(0, "option %s = %s;" % (name, val))
    full = "." + fd.package
    for m in fd.message_type:
        p.emit(0)
        p.message(0, m, full)
    for e in fd.enum_type:
        p.emit(0)
        p.enum(0, e)
    by_extendee = {}
    for ext in fd.extension:
        by_extendee.setdefault(ext.extendee, []).append(ext)
    for extendee, exts in by_extendee.items():
        p.emit(0)
        p.emit(0, "extend %s {" % extendee)
        for ext in exts:
            p.field(1, ext, {})
        p.emit(0, "}")
    for s in fd.service:
        p.emit(0)
        p.service(s)
    return "\n".join(p.lines) + "\n"


def snake(name):
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = s.lower()
    return s + "_" if s in ("enum", "type", "mod", "struct", "fn", "use") else s


def collect_urns():
    """[(rust_module_path, const_name, python_path, value)] from every `_pb2_urns` module."""
    out = []
    for path in URN_MODULES:
        mod = load_module(path, "_pb2_urns")
        for outer_name in sorted(vars(mod)):
            outer = getattr(mod, outer_name)
            if not isinstance(outer, type):
                continue
            for inner_name in sorted(vars(outer)):
                inner = getattr(outer, inner_name)
                if not isinstance(inner, type):
                    continue
                for const in sorted(vars(inner)):
                    v = getattr(inner, const)
                    if type(v).__name__ != "PropertiesFromEnumValue":
                        continue
                    value = v.urn or v.constant or v.spec.urn or v.label_props.name
                    if not value:
                        continue
                    out.append(("%s::%s" % (snake(outer_name), snake(inner_name)), const,
                                "%s.%s.%s" % (outer_name, inner_name, const), value))
    return out


def render_urns(urns):
    lines = [
        "//! Beam's standard URNs and constants, as Rust string constants.",
        "//!",
        "//! Generated by `tools/gen_model.py` from the `*_pb2_urns` modules of the",
        "//! apache-beam==2.77.0 wheel; do not edit by hand. Modules mirror Beam's",
        "//! Python classes in snake case: `StandardPTransforms.Primitives.PAR_DO`",
        "//! is [`standard_p_transforms::primitives::PAR_DO`].",
        "",
    ]
    tree = {}
    for modpath, const, pypath, value in urns:
        outer, inner = modpath.split("::")
        tree.setdefault(outer, {}).setdefault(inner, []).append((const, pypath, value))
    for outer in sorted(tree):
        lines.append("#[allow(missing_docs)]")
        lines.append("pub mod %s {" % outer)
        for inner in sorted(tree[outer]):
            lines.append("    #[allow(missing_docs)]")
            lines.append("    pub mod %s {" % inner)
            seen = set()
            for const, pypath, value in tree[outer][inner]:
                if const in seen:
                    continue
                seen.add(const)
                lines.append("        /// `%s`" % pypath)
                lines.append("        pub const %s: &str = %s;" % (const, quote(value)))
            lines.append("    }")
        lines.append("}")
        lines.append("")
    lines.append("/// Every constant above as `(Beam Python path, value)`, for conformance checks.")
    lines.append("pub const ALL: &[(&str, &str)] = &[")
    for modpath, const, pypath, value in urns:
        lines.append("    (%s, %s::%s)," % (quote(pypath), modpath, const))
    lines.append("];")
    return "\n".join(lines) + "\n"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in MODEL_FILES:
        fd = file_proto(path)
        out = os.path.join(root, "proto", fd.name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(render_file(fd))
        print("wrote", os.path.relpath(out, root))
    urns = collect_urns()
    out = os.path.join(root, "crates", "wasmbeam-proto", "src", "urns.rs")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(render_urns(urns))
    print("wrote", os.path.relpath(out, root), "(%d constants)" % len(urns))


if __name__ == "__main__":
    sys.exit(main())
