#!/usr/bin/env python3
"""Compare wasmbeam's compiled model with Beam 2.77's, as shipped in the apache-beam wheel.

usage: beam_reference.py descriptors OURS.pb     field-by-field descriptor comparison
       beam_reference.py urns OURS.json          URN constants vs the *_pb2_urns modules

Prints a count line and every difference; exits 1 on any difference.
"""
import importlib
import json
import logging
import sys

logging.disable(logging.WARNING)
from google.protobuf import descriptor_pb2  # noqa: E402

API = "apache_beam.portability.api.org.apache.beam.model."
MODEL_FILES = [
    "pipeline/v1/beam_runner_api", "pipeline/v1/endpoints", "pipeline/v1/external_transforms",
    "pipeline/v1/metrics", "pipeline/v1/schema", "pipeline/v1/standard_window_fns",
    "job_management/v1/beam_job_api", "job_management/v1/beam_artifact_api",
    "job_management/v1/beam_expansion_api", "fn_execution/v1/beam_fn_api",
    "fn_execution/v1/beam_provision_api",
]
URN_MODULES = [
    "pipeline/v1/beam_runner_api", "pipeline/v1/external_transforms", "pipeline/v1/metrics",
    "pipeline/v1/schema", "pipeline/v1/standard_window_fns",
    "job_management/v1/beam_artifact_api", "fn_execution/v1/beam_fn_api",
]


def module(path, suffix):
    return importlib.import_module(API + path.replace("/", ".") + suffix)


def beam_file(path):
    fd = descriptor_pb2.FileDescriptorProto()
    module(path, "_pb2").DESCRIPTOR.CopyToProto(fd)
    return fd


def normalize(fd):
    """Drop what carries no schema meaning and no wire bytes: comments, protoc's
    derived json_name, and options messages that are present but empty."""
    fd = descriptor_pb2.FileDescriptorProto.FromString(fd.SerializeToString())
    fd.ClearField("source_code_info")
    for s in fd.service:
        for m in s.method:
            if m.HasField("options") and not m.options.ListFields():
                m.ClearField("options")

    def fields(msg):
        for f in list(msg.field) + list(msg.extension):
            f.ClearField("json_name")
        for n in msg.nested_type:
            fields(n)
    for m in fd.message_type:
        fields(m)
    for e in fd.extension:
        e.ClearField("json_name")
    return fd


class Diff:
    def __init__(self):
        self.diffs = []
        self.counts = {"files": 0, "messages": 0, "fields": 0, "enums": 0, "enum values": 0,
                       "services": 0, "methods": 0}

    def walk(self, path, a, b):
        """Recursive comparison of two protobuf messages; a is Beam's, b is ours."""
        kind = a.DESCRIPTOR.name
        count_as = {"DescriptorProto": "messages", "FieldDescriptorProto": "fields",
                    "EnumDescriptorProto": "enums", "EnumValueDescriptorProto": "enum values",
                    "ServiceDescriptorProto": "services", "MethodDescriptorProto": "methods"}
        if kind in count_as:
            self.counts[count_as[kind]] += 1
        names = {f.name for f, _ in a.ListFields()} | {f.name for f, _ in b.ListFields()}
        for fname in sorted(names):
            fdesc = a.DESCRIPTOR.fields_by_name[fname]
            va, vb = getattr(a, fname), getattr(b, fname)
            if fdesc.is_repeated:
                va, vb = list(va), list(vb)
                if fdesc.type == fdesc.TYPE_MESSAGE:
                    key = (lambda x: x.name) if va and hasattr(va[0], "name") else None
                    if key:
                        ma, mb = {key(x): x for x in va}, {key(x): x for x in vb}
                        for n in ma:
                            if n not in mb:
                                self.diffs.append("%s.%s: %s missing in wasmbeam" % (path, fname, n))
                        for n in mb:
                            if n not in ma:
                                self.diffs.append("%s.%s: %s not in Beam" % (path, fname, n))
                        if [key(x) for x in va if key(x) in mb] != [key(x) for x in vb if key(x) in ma]:
                            self.diffs.append("%s.%s: declaration order differs" % (path, fname))
                        for n in ma:
                            if n in mb:
                                self.walk("%s.%s" % (path, n), ma[n], mb[n])
                        continue
                    if len(va) != len(vb):
                        self.diffs.append("%s.%s: %d entries in Beam, %d in wasmbeam" % (path, fname, len(va), len(vb)))
                        continue
                    for i, (x, y) in enumerate(zip(va, vb)):
                        self.walk("%s.%s[%d]" % (path, fname, i), x, y)
                    continue
                if va != vb:
                    self.diffs.append("%s.%s: Beam %r, wasmbeam %r" % (path, fname, va, vb))
            elif fdesc.type == fdesc.TYPE_MESSAGE:
                if a.HasField(fname) != b.HasField(fname) or va.SerializeToString(deterministic=True) != vb.SerializeToString(deterministic=True):
                    self.diffs.append("%s.%s: Beam {%s} wasmbeam {%s}" % (path, fname, str(va).strip(), str(vb).strip()))
            elif va != vb or a.HasField(fname) != b.HasField(fname):
                self.diffs.append("%s.%s: Beam %r, wasmbeam %r" % (path, fname, va, vb))


def descriptors(ours_path):
    ours = descriptor_pb2.FileDescriptorSet.FromString(open(ours_path, "rb").read())
    by_name = {f.name: f for f in ours.file}
    d = Diff()
    for path in MODEL_FILES:
        ref = beam_file(path)
        d.counts["files"] += 1
        if ref.name not in by_name:
            d.diffs.append("%s: missing in wasmbeam" % ref.name)
            continue
        d.walk(ref.name, normalize(ref), normalize(by_name[ref.name]))
    summary = ", ".join("%d %s" % (v, k) for k, v in d.counts.items())
    for line in d.diffs:
        print("DIFF", line)
    print("protos: %s compared with apache-beam 2.77.0; %d differences" % (summary, len(d.diffs)))
    return 1 if d.diffs or d.counts["fields"] == 0 else 0


def urns(ours_path):
    ours = dict(json.load(open(ours_path)))
    ref = {}
    for path in URN_MODULES:
        mod = module(path, "_pb2_urns")
        for outer_name, outer in vars(mod).items():
            if not isinstance(outer, type):
                continue
            for inner_name, inner in vars(outer).items():
                if not isinstance(inner, type):
                    continue
                for const, v in vars(inner).items():
                    if type(v).__name__ != "PropertiesFromEnumValue":
                        continue
                    value = v.urn or v.constant or v.spec.urn or v.label_props.name
                    if value:
                        ref["%s.%s.%s" % (outer_name, inner_name, const)] = value
    bad = 0
    for k, v in sorted(ref.items()):
        if k not in ours:
            print("DIFF %s = %r missing in wasmbeam" % (k, v))
            bad += 1
        elif ours[k] != v:
            print("DIFF %s: Beam %r, wasmbeam %r" % (k, v, ours[k]))
            bad += 1
    for k in sorted(set(ours) - set(ref)):
        print("DIFF %s = %r not in Beam" % (k, ours[k]))
        bad += 1
    print("urns: %d/%d constants match apache-beam 2.77.0" % (len(ref) - bad if bad <= len(ref) else 0, len(ref)))
    return 1 if bad or not ref else 0


if __name__ == "__main__":
    sys.exit({"descriptors": descriptors, "urns": urns}[sys.argv[1]](sys.argv[2]))
