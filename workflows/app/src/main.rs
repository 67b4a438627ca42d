//! The tutorial's container: uploads `model/sample.txt` (relative to the working directory, the
//! image's WORKDIR) to `s3://$BUCKET/$KEY`.
//!
//! Credentials come from the SDK's default chain, which inside ECS means the task role through
//! the container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `_FULL_URI`).
//! With `AWS_ENDPOINT_URL` set (an emulator such as moto) S3 is addressed path-style.

use std::process::ExitCode;

const LOCAL_FILE: &str = "model/sample.txt";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("ecs-example-app: error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<String, String> {
    let bucket = env_or("BUCKET", "projectjz");
    let key = env_or("KEY", "ecs-example/sample.txt");
    let body = std::fs::read(LOCAL_FILE).map_err(|e| {
        let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
        format!("cannot read {LOCAL_FILE} (working directory {cwd}): {e}")
    })?;
    eprintln!("writing {LOCAL_FILE} -> s3://{bucket}/{key}");

    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let emulated = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let s3 =
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(emulated).build());
    let size = body.len();
    s3.put_object().bucket(&bucket).key(&key).body(body.into()).send().await.map_err(|e| {
        // The SDK's Display is just "service error"; the debug chain names the cause (for
        // example "no credentials" or AccessDenied with the role's message).
        format!("PutObject s3://{bucket}/{key} failed: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
    })?;
    Ok(format!("wrote {LOCAL_FILE} ({size} bytes) to s3://{bucket}/{key}"))
}

/// The variable's value, or `default` when it is unset or empty.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}
