"""Beam's own portable-runner suite (apache-beam 2.77.0's
`PortableRunnerTest`, the suite Prism's tests subclass too), run against
`wasmbeam serve` with LOOPBACK environments.

Run with: WASMBEAM_BIN=target/debug/wasmbeam .venv/bin/python -m pytest \
    tests/beam_suite/wasmbeam_portable_test.py
"""
import os
import tempfile

from apache_beam.options.pipeline_options import PortableOptions
from apache_beam.runners.portability import portable_runner_test


class WasmbeamPortableRunnerTest(portable_runner_test.PortableRunnerTest):
    _use_subprocesses = True

    @classmethod
    def _subprocess_command(cls, job_port, expansion_port):
        state = tempfile.mkdtemp(prefix="wasmbeam-beam-suite-")
        return [
            os.environ.get("WASMBEAM_BIN", "target/debug/wasmbeam"),
            "serve",
            "--port",
            str(job_port),
            "--state-dir",
            state,
        ]

    def create_options(self):
        options = super().create_options()
        options.view_as(PortableOptions).environment_type = "LOOPBACK"
        return options
