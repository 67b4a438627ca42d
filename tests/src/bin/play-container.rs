//! Plays an ECS container's part against the local emulators (moto never runs containers):
//! pulls IMAGE from its registry, unpacks it, and runs its entrypoint with the task role's
//! credentials served as ECS serves them. Used by scripts/demo.sh.
//!
//! usage: play-container IMAGE TASK_ROLE_ARN [NAME=VALUE]...   (emulator settings from
//! `scripts/emulators.sh env`; NAME=VALUE: the task definition's container environment)

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [image, role, env @ ..] = args.as_slice() else {
        eprintln!("usage: play-container IMAGE TASK_ROLE_ARN [NAME=VALUE]...");
        std::process::exit(2);
    };
    let env: Vec<(&str, &str)> =
        env.iter().map(|kv| kv.split_once('=').unwrap_or_else(|| panic!("expected NAME=VALUE, got {kv}"))).collect();
    let out = wharf_tests::container::play_container(image, role, &env).await;
    print!("{}", wharf_tests::text(&out.stdout));
    eprint!("{}", wharf_tests::text(&out.stderr));
}
