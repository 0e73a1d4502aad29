"""List a job server's jobs with their states and messages (Job API).

usage: job_status.py ENDPOINT
Prints "JOB <id> <STATE>" then, for finished jobs, "  MSG <text>" lines.
"""
import sys

import grpc
from apache_beam.portability.api import beam_job_api_pb2 as api
from apache_beam.portability.api import beam_job_api_pb2_grpc as api_grpc

stub = api_grpc.JobServiceStub(grpc.insecure_channel(sys.argv[1]))
for info in stub.GetJobs(api.GetJobsRequest(), timeout=30).job_info:
    state = api.JobState.Enum.Name(info.state)
    print("JOB", info.job_id, state)
    if state not in ("DONE", "FAILED", "CANCELLED"):
        continue  # the message stream stays open until the job ends
    for m in stub.GetMessageStream(api.JobMessagesRequest(job_id=info.job_id), timeout=30):
        if m.HasField("message_response"):
            print("  MSG", m.message_response.message_text.replace("\n", " | "))
