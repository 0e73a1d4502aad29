"""Bearer tokens for multi-tenant wasmbeam servers.

A single-user server (no config file) needs nothing from here: use
``--runner=PortableRunner --job_endpoint=HOST:PORT``. A multi-tenant server
wants ``authorization: Bearer TOKEN`` on every Job API call. Either run with
``--runner=wasmbeam.runner.WasmbeamRunner`` and set ``WASMBEAM_TOKEN``, or
call :func:`add_token` before ``pipeline.run()``.

Artifact staging needs no token: the staging session token that Prepare
returns is itself an unguessable, single-job credential.
"""

import os

import grpc
from apache_beam.portability.api import beam_job_api_pb2_grpc
from apache_beam.runners.portability import job_server
from apache_beam.runners.portability.portable_runner import PortableRunner


class _BearerToken(grpc.UnaryUnaryClientInterceptor,
                   grpc.UnaryStreamClientInterceptor):

    def __init__(self, token):
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [self._header]
        return details._replace(metadata=metadata) if hasattr(
            details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


class _Details(grpc.ClientCallDetails):

    def __init__(self, base, metadata):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class _TokenJobServer(job_server.JobServer):

    def __init__(self, endpoint, token, timeout=None):
        self._endpoint = endpoint
        self._token = token
        self._timeout = timeout

    def start(self):
        channel = grpc.insecure_channel(self._endpoint)
        grpc.channel_ready_future(channel).result(timeout=self._timeout)
        channel = grpc.intercept_channel(channel, _BearerToken(self._token))
        return beam_job_api_pb2_grpc.JobServiceStub(channel)

    def stop(self):
        pass


def add_token(token=None):
    """Send ``token`` (default: ``$WASMBEAM_TOKEN``) with every Job API call
    that PortableRunner makes from now on in this process."""
    token = token or os.environ.get("WASMBEAM_TOKEN")
    if not token:
        raise ValueError("wasmbeam.add_token: no token given and WASMBEAM_TOKEN "
                         "is not set")
    original = job_server.ExternalJobServer

    class ExternalJobServerWithToken(_TokenJobServer):

        def __init__(self, endpoint, timeout=None):
            super().__init__(endpoint, token, timeout)

    ExternalJobServerWithToken.original = original
    job_server.ExternalJobServer = ExternalJobServerWithToken


class WasmbeamRunner(PortableRunner):
    """PortableRunner that sends ``$WASMBEAM_TOKEN`` as a bearer token."""

    def create_job_service(self, options):
        from apache_beam.options.pipeline_options import PortableOptions
        portable = options.view_as(PortableOptions)
        token = os.environ.get("WASMBEAM_TOKEN")
        if not token or not portable.job_endpoint:
            return super().create_job_service(options)
        server = _TokenJobServer(portable.job_endpoint, token,
                                 portable.job_server_timeout)
        return self.create_job_service_handle(server.start(), options)
