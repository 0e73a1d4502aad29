"""Points every EXTERNAL environment of a Beam pipeline proto at another
worker pool (the fixtures name localhost:50000), for tests that run the
fixtures against a worker pool they start on a free port.

usage: retarget_pool.py IN.pb OUT.pb POOL_ADDRESS
"""
import sys

from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2, endpoints_pb2


def main():
    src, dst, pool = sys.argv[1:4]
    p = beam_runner_api_pb2.Pipeline()
    with open(src, "rb") as f:
        p.ParseFromString(f.read())
    n = 0
    for env in p.components.environments.values():
        if env.urn == common_urns.environments.EXTERNAL.urn:
            payload = beam_runner_api_pb2.ExternalPayload()
            payload.ParseFromString(env.payload)
            payload.endpoint.CopyFrom(endpoints_pb2.ApiServiceDescriptor(url=pool))
            env.payload = payload.SerializeToString()
            n += 1
    if n == 0:
        sys.exit("%s has no EXTERNAL environment" % src)
    with open(dst, "wb") as f:
        f.write(p.SerializeToString())


if __name__ == "__main__":
    main()
