"""Shared by the scripts that write Beam pipelines for `wasmbeam run`: the
options of an EXTERNAL environment (a worker pool), and saving a pipeline
as the binary `Pipeline` proto Beam's PortableRunner would submit."""
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions
from apache_beam.transforms import environments


def options(pool):
    """Pipeline options whose default environment is the worker pool at
    `pool`, or, for `process:COMMAND`, a PROCESS environment running COMMAND."""
    if pool.startswith("process:"):
        command = pool[len("process:"):]
        return PipelineOptions(["--environment_type=PROCESS",
                                '--environment_config={"command": "%s"}' % command])
    return PipelineOptions(["--environment_type=EXTERNAL", "--environment_config=" + pool])


def save(pipeline, opts, path):
    """Write `pipeline` (built with `opts`) to `path` as a binary proto."""
    env = environments.Environment.from_options(opts.view_as(PortableOptions))
    proto = pipeline.to_runner_api(default_environment=env)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
