"""A boot program for a PROCESS environment, doing what Beam's container
boot does with the runner's services: it asks the provision service (Beam's
own gRPC stubs, with `worker_id` metadata) for the pipeline options and the
environment's dependencies, fetches each dependency from the artifact
retrieval service into SEMI_PERSIST_DIR/staged, then runs the Beam Python
SDK harness. It also checks that the runner refuses an artifact that is not
among the dependencies.

usage: provision_boot.py --id=ID --control_endpoint=A --logging_endpoint=A
         --artifact_endpoint=A --provision_endpoint=A --semi_persist_dir=DIR
"""
import argparse, json, os, sys

import grpc
from google.protobuf import json_format
from apache_beam.portability.api import (
    beam_artifact_api_pb2, beam_artifact_api_pb2_grpc, beam_provision_api_pb2,
    beam_provision_api_pb2_grpc, beam_runner_api_pb2)

ap = argparse.ArgumentParser()
for flag in ["id", "control_endpoint", "logging_endpoint", "artifact_endpoint",
             "provision_endpoint", "semi_persist_dir"]:
    ap.add_argument("--" + flag, required=True)
a = ap.parse_args()
meta = [("worker_id", a.id)]

info = beam_provision_api_pb2_grpc.ProvisionServiceStub(
    grpc.insecure_channel(a.provision_endpoint)).GetProvisionInfo(
        beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=meta).info
artifacts = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(
    grpc.insecure_channel(a.artifact_endpoint))
staged = os.path.join(a.semi_persist_dir, "staged")
os.makedirs(staged, exist_ok=True)
deps = artifacts.ResolveArtifacts(beam_artifact_api_pb2.ResolveArtifactsRequest(
    artifacts=info.dependencies), metadata=meta).replacements
for dep in deps:
    role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload)
    with open(os.path.join(staged, os.path.basename(role.staged_name)), "wb") as f:
        for chunk in artifacts.GetArtifact(
                beam_artifact_api_pb2.GetArtifactRequest(artifact=dep), metadata=meta):
            f.write(chunk.data)

# A file that is not a dependency must not be served.
hostile = beam_runner_api_pb2.ArtifactInformation(
    type_urn="beam:artifact:type:file:v1",
    type_payload=beam_runner_api_pb2.ArtifactFilePayload(path="/etc/passwd").SerializeToString())
try:
    for _ in artifacts.GetArtifact(beam_artifact_api_pb2.GetArtifactRequest(artifact=hostile), metadata=meta):
        pass
    sys.exit("provision_boot: the runner served /etc/passwd, which is not a dependency")
except grpc.RpcError as e:
    if e.code() != grpc.StatusCode.NOT_FOUND:
        sys.exit("provision_boot: expected NOT_FOUND for a non-dependency, got %s" % e.code())

os.environ.update({
    "WORKER_ID": a.id,
    "PIPELINE_OPTIONS": json.dumps(json_format.MessageToDict(info.pipeline_options)),
    "SEMI_PERSISTENT_DIRECTORY": a.semi_persist_dir,
    "CONTROL_API_SERVICE_DESCRIPTOR": 'url: "%s"' % a.control_endpoint,
    "LOGGING_API_SERVICE_DESCRIPTOR": 'url: "%s"' % a.logging_endpoint,
})
os.execv(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"])
