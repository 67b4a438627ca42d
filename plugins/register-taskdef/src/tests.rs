use super::*;
use serde_json::json;

fn input(value: serde_json::Value) -> Input {
    serde_json::from_value(value).unwrap()
}

fn base() -> serde_json::Value {
    json!({
        "family": "ecs-example",
        "cpu": 256,
        "memory": "512",
        "execution_role_arn": "arn:aws:iam::1:role/exec",
        "region": "us-east-1",
        "containers": [{
            "name": "app",
            "image": "docker.io/me/ecs-example:v1",
            "environment": { "B": "2", "A": "1" },
            "secrets": { "TOKEN": "arn:aws:secretsmanager:us-east-1:1:secret:t" , "DB": "arn:aws:ssm:us-east-1:1:parameter/db" },
            "port_mappings": [8080, 9090],
            "repository_credentials": "arn:aws:secretsmanager:us-east-1:1:secret:registry",
            "log_group": "/ecs/ecs-example"
        }]
    })
}

fn with(mut value: serde_json::Value, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    edit(&mut value);
    value
}

fn err(value: serde_json::Value) -> String {
    desired_definition(&input(value)).unwrap_err().message().to_string()
}

#[test]
fn fargate_sizes() {
    assert!(fargate::size_problem(256, 512).is_none());
    assert!(fargate::size_problem(256, 2048).is_none());
    assert!(fargate::size_problem(512, 4096).is_none());
    assert!(fargate::size_problem(4096, 30720).is_none());
    assert!(fargate::size_problem(8192, 20480).is_none());
    assert!(fargate::size_problem(16384, 122880).is_none());
    let e = fargate::size_problem(256, 4096).unwrap();
    assert!(e.contains("use 512, 1024, 2048"), "{e}");
    let e = fargate::size_problem(1024, 1024).unwrap();
    assert!(e.contains("2048 to 8192 in steps of 1024"), "{e}");
    assert!(fargate::size_problem(8192, 17408).is_some(), "8 vCPU steps by 4096");
    assert!(fargate::size_problem(16384, 36864).is_some(), "16 vCPU steps by 8192");
    assert!(fargate::size_problem(300, 512).unwrap().contains("256, 512, 1024"));
}

#[test]
fn builds_the_definition_with_defaults() {
    let (td, groups) = desired_definition(&input(base())).unwrap();
    assert_eq!((td.cpu.as_str(), td.memory.as_str()), ("256", "512"));
    assert_eq!(td.cpu_architecture, "X86_64");
    assert_eq!(td.operating_system_family, "LINUX");
    assert_eq!(td.task_role_arn, None);
    let c = &td.containers[0];
    assert!(c.essential);
    assert_eq!(c.environment[0].name, "A");
    assert_eq!(c.port_mappings.iter().map(|p| p.container_port).collect::<Vec<_>>(), vec![8080, 9090]);
    let logs = c.logs.as_ref().unwrap();
    assert_eq!(
        (logs.group.as_str(), logs.region.as_str(), logs.stream_prefix.as_str()),
        ("/ecs/ecs-example", "us-east-1", "app")
    );
    assert_eq!(groups, vec!["/ecs/ecs-example".to_string()]);
    let no_create = with(base(), |v| v["containers"][0]["create_log_group"] = json!(false));
    assert!(desired_definition(&input(no_create)).unwrap().1.is_empty());
}

#[test]
fn rejects_bad_inputs_with_a_hint() {
    assert!(err(with(base(), |v| v["memory"] = json!(8192))).contains("memory 8192 is not valid with cpu 256"));
    assert!(err(with(base(), |v| v["cpu"] = json!("lots"))).contains("`cpu` must be a whole number"));
    assert!(err(with(base(), |v| v["cpu_architecture"] = json!("arm"))).contains("X86_64 or ARM64"));
    assert!(err(with(base(), |v| v["family"] = json!("bad family"))).contains("family"));
    assert!(err(with(base(), |v| v["region"] = json!(null))).contains("`region` is required"));
    assert!(err(with(base(), |v| v["execution_role_arn"] = json!(""))).contains("execution_role_arn"));
    assert!(err(with(base(), |v| v["containers"] = json!([]))).contains("at least one container"));
    assert!(err(with(base(), |v| v["containers"][0]["essential"] = json!(false))).contains("essential"));
    let twice = with(base(), |v| {
        let c = v["containers"][0].clone();
        v["containers"].as_array_mut().unwrap().push(c);
    });
    assert!(err(twice).contains("used twice"));
    let clash = with(base(), |v| v["containers"][0]["environment"]["TOKEN"] = json!("x"));
    assert!(err(clash).contains("both in `environment` and in `secrets`"));
    let creds = with(base(), |v| v["containers"][0]["repository_credentials"] = json!("arn:aws:ssm:x"));
    assert!(err(creds).contains("repository_credentials"));
    assert!(err(with(base(), |v| v["containers"][0]["port_mappings"] = json!([0]))).contains("port 0"));
}

#[test]
fn a_secret_value_in_place_of_an_arn_is_never_echoed() {
    let leaked = with(base(), |v| v["containers"][0]["secrets"]["TOKEN"] = json!("hunter2-super-secret"));
    let message = err(leaked);
    assert!(message.contains("secret `TOKEN` must be the ARN"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn unknown_fields_are_refused() {
    assert!(serde_json::from_value::<Input>(with(base(), |v| v["cpus"] = json!(1))).is_err());
    assert!(serde_json::from_value::<Input>(with(base(), |v| v["containers"][0]["env"] = json!({}))).is_err());
}

#[test]
fn comparison_ignores_order_and_absent_roles() {
    let (desired, _) = desired_definition(&input(base())).unwrap();
    let mut described = desired.clone();
    let c = &mut described.containers[0];
    c.environment.reverse();
    c.secrets.reverse();
    c.port_mappings.reverse();
    c.port_mappings[0].protocol = "TCP".into();
    described.task_role_arn = Some(String::new());
    assert!(same_definition(&described, &desired));
}

#[test]
fn comparison_sees_real_changes() {
    let (desired, _) = desired_definition(&input(base())).unwrap();
    let changed = |edit: fn(&mut TaskDefinition)| {
        let mut other = desired.clone();
        edit(&mut other);
        !same_definition(&other, &desired)
    };
    assert!(changed(|td| td.containers[0].image = "docker.io/me/ecs-example:v2".into()));
    assert!(changed(|td| td.containers[0].environment[0].value = "changed".into()));
    assert!(changed(|td| td.containers[0].secrets.pop().map(drop).unwrap_or(())));
    assert!(changed(|td| td.containers[0].command = vec!["python3".into()]));
    assert!(changed(|td| td.containers[0].logs = None));
    assert!(changed(|td| td.containers[0].repository_credentials = None));
    assert!(changed(|td| td.memory = "1024".into()));
    assert!(changed(|td| td.cpu_architecture = "ARM64".into()));
    assert!(changed(|td| td.task_role_arn = Some("arn:aws:iam::1:role/task".into())));
    assert!(changed(|td| td.operating_system_family = String::new()));
}
