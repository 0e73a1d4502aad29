//! `wasmbeam cancel JOB` and `wasmbeam drain JOB`: Beam's Job API calls
//! against a running `wasmbeam serve` (or any Beam job service).

use std::time::Duration;

use wasmbeam_proto::job_management::v1::{
    job_service_client::JobServiceClient, job_state, CancelJobRequest, DrainJobRequest,
    GetJobStateRequest,
};

use crate::Failure;

/// Which call.
#[derive(Clone, Copy)]
pub enum Action {
    /// Stop at once; nothing is committed.
    Cancel,
    /// Stop the sources, fire what is pending, commit, end DRAINED.
    Drain,
}

/// The arguments of both commands.
pub struct JobArgs {
    pub job_id: String,
    pub endpoint: String,
    pub token: Option<String>,
    pub wait: bool,
}

fn failed(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: e.into(),
    }
}

fn name(state: i32) -> &'static str {
    job_state::Enum::try_from(state)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN")
}

pub fn call(action: Action, args: JobArgs) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    rt.block_on(async move {
        let url = if args.endpoint.contains("://") {
            args.endpoint.clone()
        } else {
            format!("http://{}", args.endpoint)
        };
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| crate::bad_input(anyhow::anyhow!("--endpoint {:?}: {e}", args.endpoint)))?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| {
                failed(anyhow::anyhow!(
                    "cannot reach the job service at {url}: {e} (is `wasmbeam serve` running there?)"
                ))
            })?;
        let token = args.token.clone();
        let mut client = JobServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            if let Some(t) = &token {
                let v = format!("Bearer {t}")
                    .parse()
                    .map_err(|_| tonic::Status::invalid_argument("the token is not valid in a header"))?;
                req.metadata_mut().insert("authorization", v);
            }
            Ok(req)
        });
        let job_id = args.job_id.clone();
        let state = match action {
            Action::Cancel => client
                .cancel(CancelJobRequest { job_id: job_id.clone() })
                .await
                .map(|r| r.into_inner().state),
            Action::Drain => client
                .drain(DrainJobRequest { job_id: job_id.clone() })
                .await
                .map(|r| r.into_inner().state),
        }
        .map_err(|s| failed(anyhow::anyhow!("job {job_id}: {}", s.message())))?;
        println!("job {job_id}: {}", name(state));
        if !args.wait {
            return Ok(());
        }
        // Wait for the job to end and say how.
        loop {
            let s = client
                .get_state(GetJobStateRequest { job_id: job_id.clone() })
                .await
                .map_err(|s| failed(anyhow::anyhow!("job {job_id}: {}", s.message())))?
                .into_inner()
                .state;
            use job_state::Enum as S;
            if [S::Done, S::Failed, S::Cancelled, S::Drained, S::Updated]
                .iter()
                .any(|t| *t as i32 == s)
            {
                println!("job {job_id}: {}", name(s));
                return if s == S::Failed as i32 {
                    Err(failed(anyhow::anyhow!("job {job_id} failed")))
                } else {
                    Ok(())
                };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
