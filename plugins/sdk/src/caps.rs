//! Host capabilities, one module per WIT interface. Every function needs a grant line in the
//! workflow step (`service:Operation resource`, named in each function's doc) except [`log`] and
//! [`digest`].
//! On wasm they call the host; under `cargo test` the test's [`FakeHost`](crate::testing::FakeHost)
//! answers them.

/// Step logging (needs no grant). Prefer the [`info!`](crate::info), [`warn!`](crate::warn),
/// [`debug!`](crate::debug), [`error!`](crate::error) and [`progress!`](crate::progress) macros.
///
/// ```
/// wharf_plugin_sdk::log::info("cluster is ACTIVE");
/// wharf_plugin_sdk::log::progress("2 of 3 tasks running");
/// ```
pub mod log {
    pub use crate::bindings::wharf::plugin::log::Level;

    /// Writes a line to the step's journaled log (`wharf logs RUN --step ID`).
    ///
    /// ```
    /// use wharf_plugin_sdk::log::{Level, write};
    /// write(Level::Warn, "the default VPC has no public subnet");
    /// ```
    pub fn write(level: Level, message: &str) {
        #[cfg(target_arch = "wasm32")]
        crate::bindings::wharf::plugin::log::write(level, message);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::log(level_name(level), message);
    }
    /// Writes an info line. `log::info("ready")`, or `info!("{n} ready")`.
    pub fn info(message: &str) {
        write(Level::Info, message);
    }
    /// Writes a warning line. `log::warn("slow")`, or `warn!("{n}s")`.
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }
    /// Writes a debug line. `log::debug("request sent")`.
    pub fn debug(message: &str) {
        write(Level::Debug, message);
    }
    /// Writes an error line (the step's failure is reported by returning an `Error`, not this).
    pub fn error(message: &str) {
        write(Level::Error, message);
    }
    /// Reports progress for the live view, e.g. `log::progress("2 of 3 tasks running")`.
    pub fn progress(message: &str) {
        #[cfg(target_arch = "wasm32")]
        crate::bindings::wharf::plugin::log::progress(message);
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::log("progress", message);
    }

    /// The level as `FakeHost::logs` shows it.
    #[cfg(not(target_arch = "wasm32"))]
    fn level_name(level: Level) -> &'static str {
        match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// SHA-256 computed by the host at native speed (needs no grant): several times faster than the
/// same code inside the sandbox, for plugins that hash large inputs. Under `cargo test` it is
/// computed in-process; the result is the same.
///
/// ```
/// let mut hasher = wharf_plugin_sdk::digest::Sha256::new();
/// hasher.update(b"ab");
/// hasher.update(b"c");
/// assert_eq!(hasher.finish(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// ```
pub mod digest {
    /// Bytes gathered before one call to the host: each call copies its bytes across the
    /// sandbox boundary, and small writes (a tar builder writes 8 KiB at a time) would be
    /// dominated by the call itself.
    const BATCH: usize = 256 * 1024;

    /// The hasher: the host's resource on wasm, in-process elsewhere.
    #[cfg(target_arch = "wasm32")]
    type Hasher = crate::bindings::wharf::plugin::digest::Sha256;
    #[cfg(not(target_arch = "wasm32"))]
    type Hasher = sha2::Sha256;

    /// An incremental SHA-256. Also an [`std::io::Write`], to hash while writing.
    pub struct Sha256 {
        host: Hasher,
        pending: Vec<u8>,
    }

    impl Default for Sha256 {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Sha256 {
        pub fn new() -> Self {
            #[cfg(target_arch = "wasm32")]
            let host = Hasher::new();
            #[cfg(not(target_arch = "wasm32"))]
            let host = <Hasher as sha2::Digest>::new();
            Sha256 { host, pending: Vec::new() }
        }

        /// Adds `data` to what is hashed.
        pub fn update(&mut self, data: &[u8]) {
            if self.pending.len() + data.len() < BATCH {
                self.pending.extend_from_slice(data);
                return;
            }
            self.send_pending();
            if data.len() >= BATCH {
                send(&mut self.host, data);
            } else {
                self.pending.extend_from_slice(data);
            }
        }

        /// The SHA-256 of everything added so far, as 64 lower-case hex digits. More can be
        /// added after it.
        pub fn finish(&mut self) -> String {
            self.send_pending();
            #[cfg(target_arch = "wasm32")]
            return self.host.finish();
            #[cfg(not(target_arch = "wasm32"))]
            return sha2::Digest::finalize(self.host.clone()).iter().map(|b| format!("{b:02x}")).collect();
        }

        /// The SHA-256 of `data`, as 64 lower-case hex digits.
        pub fn of(data: &[u8]) -> String {
            let mut hasher = Sha256::new();
            hasher.update(data);
            hasher.finish()
        }

        fn send_pending(&mut self) {
            if !self.pending.is_empty() {
                send(&mut self.host, &self.pending);
                self.pending.clear();
            }
        }
    }

    fn send(host: &mut Hasher, data: &[u8]) {
        #[cfg(target_arch = "wasm32")]
        host.update(data);
        #[cfg(not(target_arch = "wasm32"))]
        sha2::Digest::update(host, data);
    }

    impl std::io::Write for Sha256 {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.update(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

/// Amazon ECS: clusters, task definitions, services. Grants: `ecs:<Operation> <cluster>` (or
/// `<cluster>/<service>`, `<family>`).
///
/// ```
/// use wharf_plugin_sdk::{ecs, testing::FakeHost};
/// let host = FakeHost::new();
/// host.on_describe_cluster(|_name| Ok(None));
/// assert!(ecs::describe_cluster("web").unwrap().is_none());
/// ```
pub mod ecs {
    pub use crate::bindings::wharf::plugin::ecs::*;
    host_functions! { ecs:
        /// Creates the cluster, or returns the ACTIVE one of that name; tagged and recorded in the
        /// run's ledger. Grant: `ecs:CreateCluster <name>`.
        fn create_cluster(request: &CreateClusterRequest) -> Cluster, fake on_create_cluster;
        /// The named cluster, or none if missing or INACTIVE. Grant: `ecs:DescribeClusters <name>`.
        fn describe_cluster(name: &str) -> Option<Cluster>, fake on_describe_cluster;
        /// The latest ACTIVE revision of a family. Grant: `ecs:DescribeTaskDefinition <family>`.
        fn describe_task_definition(family: &str) -> Option<RegisteredTaskDefinition>, fake on_describe_task_definition;
        /// Registers a new Fargate revision (every call makes one: compare first).
        /// Grant: `ecs:RegisterTaskDefinition <family>`.
        fn register_task_definition(definition: &TaskDefinition) -> RegisteredTaskDefinition, fake on_register_task_definition;
        /// The service unless missing or INACTIVE. Grant: `ecs:DescribeServices <cluster>/<name>`.
        fn describe_service(cluster: &str, name: &str) -> Option<Service>, fake on_describe_service;
        /// Creates a Fargate service (tagged, recorded in the ledger).
        /// Grant: `ecs:CreateService <cluster>/<name>`.
        fn create_service(request: &CreateServiceRequest) -> Service, fake on_create_service;
        /// Starts a new deployment. Grant: `ecs:UpdateService <cluster>/<name>`.
        fn update_service(request: &UpdateServiceRequest) -> Service, fake on_update_service;
        /// Recently stopped tasks of a service, newest first. Grant: `ecs:ListTasks <cluster>/<name>`.
        fn stopped_tasks(cluster: &str, service: &str) -> Vec<StoppedTask>, fake on_stopped_tasks;
    }
}

/// Amazon EC2 networking: VPCs, subnets, internet routes, security groups. Grants:
/// `ec2:<Operation> <vpc-id or name>`, `*` for lookups.
///
/// ```
/// use wharf_plugin_sdk::{ec2, testing::FakeHost};
/// let host = FakeHost::new();
/// host.on_availability_zones(|| Ok(vec!["eu-west-1a".into()]));
/// assert_eq!(ec2::availability_zones().unwrap(), ["eu-west-1a"]);
/// ```
pub mod ec2 {
    pub use crate::bindings::wharf::plugin::ec2::*;
    host_functions! { ec2:
        /// The region's default VPC, if any. Grant: `ec2:DescribeVpcs *`.
        fn default_vpc() -> Option<Vpc>, fake on_default_vpc;
        /// The VPC wharf created with this `Name` tag. Grant: `ec2:DescribeVpcs *`.
        fn find_vpc(name: &str) -> Option<Vpc>, fake on_find_vpc;
        /// Subnets of a VPC. Grant: `ec2:DescribeSubnets *`.
        fn subnets(vpc_id: &str) -> Vec<Subnet>, fake on_subnets;
        /// Available availability zones. Grant: `ec2:DescribeAvailabilityZones *`.
        fn availability_zones() -> Vec<String>, fake on_availability_zones;
        /// A VPC tagged `Name=<name>`. Grant: `ec2:CreateVpc <name>`.
        fn create_vpc(name: &str, cidr_block: &str) -> Vpc, fake on_create_vpc;
        /// A public subnet. Grant: `ec2:CreateSubnet <vpc-id>`.
        fn create_public_subnet(vpc_id: &str, name: &str, cidr_block: &str, availability_zone: &str) -> Subnet,
            fake on_create_public_subnet;
        /// Internet gateway + route table for the subnets; returns the route table id.
        /// Grant: `ec2:CreateInternetGateway <name>`.
        fn create_internet_route(vpc_id: &str, name: &str, subnet_ids: &[String]) -> String,
            fake on_create_internet_route;
        /// The security group of that name in the VPC. Grant: `ec2:DescribeSecurityGroups *`.
        fn find_security_group(vpc_id: &str, name: &str) -> Option<SecurityGroup>, fake on_find_security_group;
        /// A security group with all egress and the given ingress. Grant: `ec2:CreateSecurityGroup <vpc-id>`.
        fn create_security_group(vpc_id: &str, name: &str, description: &str, ingress: &[IngressRule]) -> SecurityGroup,
            fake on_create_security_group;
    }
}

/// AWS IAM roles and policies. Grants: `iam:<Operation> <role>`.
///
/// ```
/// use wharf_plugin_sdk::{iam, testing::FakeHost};
/// let host = FakeHost::new();
/// host.on_attached_policies(|_role| Ok(vec![]));
/// assert!(iam::attached_policies("task-role").unwrap().is_empty());
/// ```
pub mod iam {
    pub use crate::bindings::wharf::plugin::iam::*;
    host_functions! { iam:
        /// The role, if it exists. Grant: `iam:GetRole <name>`.
        fn get_role(name: &str) -> Option<Role>, fake on_get_role;
        /// Creates a role with a trust policy (JSON). Grant: `iam:CreateRole <name>`.
        fn create_role(name: &str, trust_policy: &str, description: &str) -> Role, fake on_create_role;
        /// An inline policy document, if any. Grant: `iam:GetRolePolicy <role>`.
        fn get_role_policy(role: &str, policy_name: &str) -> Option<String>, fake on_get_role_policy;
        /// Creates or replaces an inline policy. Grant: `iam:PutRolePolicy <role>`.
        fn put_role_policy(role: &str, policy_name: &str, document: &str) -> (), fake on_put_role_policy;
        /// ARNs of the attached managed policies. Grant: `iam:ListAttachedRolePolicies <role>`.
        fn attached_policies(role: &str) -> Vec<String>, fake on_attached_policies;
        /// Attaches a managed policy. Grant: `iam:AttachRolePolicy <role>`.
        fn attach_role_policy(role: &str, policy_arn: &str) -> (), fake on_attach_role_policy;
    }
}

/// AWS Secrets Manager: the host reads values from where the plugin says, never the plugin.
/// Grants: `secretsmanager:<Operation> <name>` plus `env:Read <VAR>` / `file:Read <path>`.
///
/// ```
/// use wharf_plugin_sdk::{secrets, testing::FakeHost};
/// let host = FakeHost::new();
/// host.on_describe_secret(|_name| Ok(None));
/// assert!(secrets::describe_secret("db-password").unwrap().is_none());
/// ```
pub mod secrets {
    pub use crate::bindings::wharf::plugin::secrets::*;
    host_functions! { secrets:
        /// The secret's metadata (never its value). Grant: `secretsmanager:DescribeSecret <name>`.
        fn describe_secret(name: &str) -> Option<Secret>, fake on_describe_secret;
        /// Creates the secret with its first version. Grant: `secretsmanager:CreateSecret <name>`.
        fn create_secret(name: &str, description: &str, value: &SecretValue, client_request_token: &str) -> Secret,
            fake on_create_secret;
        /// Stores a new version. Grant: `secretsmanager:PutSecretValue <name>`.
        fn put_secret_value(name: &str, value: &SecretValue, client_request_token: &str) -> Secret,
            fake on_put_secret_value;
    }
}

/// Amazon S3 objects. Grants: `s3:<Operation> <bucket>/<key>`.
///
/// ```
/// use wharf_plugin_sdk::{s3, testing::FakeHost};
/// let host = FakeHost::new();
/// host.on_get_object_info(|_bucket, _key| Ok(None));
/// assert!(s3::get_object_info("bucket", "missing.txt").unwrap().is_none());
/// ```
pub mod s3 {
    pub use crate::bindings::wharf::plugin::s3::*;
    host_functions! { s3:
        /// Etag, size and sha256 of an object, or none. Grant: `s3:GetObject <bucket>/<key>`.
        fn get_object_info(bucket: &str, key: &str) -> Option<ObjectInfo>, fake on_get_object_info;
    }
}

/// Amazon CloudWatch Logs log groups. Grants: `logs:<Operation> <group>`.
///
/// ```
/// use wharf_plugin_sdk::{logs, testing::FakeHost};
/// let host = FakeHost::new();
/// host.on_ensure_log_group(|_name, _days| Ok(true));
/// assert!(logs::ensure_log_group("/ecs/web", Some(7)).unwrap());
/// ```
pub mod logs {
    pub use crate::bindings::wharf::plugin::logs::*;
    host_functions! { logs:
        /// Creates the log group if missing; true when it created it. Grant: `logs:CreateLogGroup <name>`.
        fn ensure_log_group(name: &str, retention_days: Option<u32>) -> bool, fake on_ensure_log_group;
    }
}

/// The run's resource ledger: what this run created (a step reads its own entries; other steps'
/// need `ledger:Read <step-id>`, or `ledger:Read *`), and deleting exactly that (`ledger:Delete <kind>`).
///
/// ```
/// use wharf_plugin_sdk::{ledger, testing::FakeHost};
/// let host = FakeHost::new();
/// host.on_entries(|| Ok(vec![]));
/// assert!(ledger::entries().unwrap().is_empty());
/// ```
pub mod ledger {
    pub use crate::bindings::wharf::plugin::ledger::*;
    host_functions! { ledger:
        /// What this run created, in creation order: this step's entries and those of the steps
        /// granted by `ledger:Read <step-id>`.
        fn entries() -> Vec<Entry>, fake on_entries;
        /// Deletes one ledger resource. Grant: `ledger:Delete <kind>`.
        fn delete(kind: &str, id: &str, options: DeleteOptions) -> DeleteOutcome, fake on_delete;
    }
}

/// OCI distribution registries (a private registry, Docker Hub, Amazon ECR). Blobs and manifests
/// are addressed by digest (`sha256:<64 hex>`) and the host checks every digest against the bytes.
/// Credentials are read by the host (from a Secrets Manager secret the plugin names, or an ECR
/// token): the plugin never sees them. Grants: `registry:Pull <registry>/<name>` to read,
/// `registry:Push <registry>/<name>` to write.
///
/// ```
/// use wharf_plugin_sdk::{registry, testing::FakeHost};
/// let host = FakeHost::new();
/// host.on_blob_exists(|_repo, _digest| Ok(true));
/// let repo = registry::Repository {
///     registry: "127.0.0.1:5000".into(),
///     name: "team/app".into(),
///     auth: registry::Auth::Anonymous,
/// };
/// assert!(registry::blob_exists(&repo, "sha256:0123").unwrap());
/// ```
pub mod registry {
    pub use crate::bindings::wharf::plugin::registry::*;
    host_functions! { registry:
        /// Whether the repository has the blob. Grant: `registry:Pull <registry>/<name>`.
        fn blob_exists(repo: &Repository, digest: &str) -> bool, fake on_blob_exists;
        /// Uploads a blob unless the repository has it; true if it was uploaded (invalid-input
        /// when `data` does not hash to `digest`). Grant: `registry:Push <registry>/<name>`.
        fn push_blob(repo: &Repository, digest: &str, data: &[u8]) -> bool, fake on_push_blob;
        /// The gzip layer whose tar has digest `diff_id`, if the host pushed it to this repository
        /// before (`push_layer`) and the repository still has it: a build can skip compressing
        /// unchanged files. Grant: `registry:Push <registry>/<name>`.
        fn find_layer(repo: &Repository, diff_id: &str) -> Option<Layer>, fake on_find_layer;
        /// `push_blob` for a gzip layer whose tar hashes to `diff_id`: the host unpacks it to check
        /// (invalid-input `DiffIdMismatch` if not), uploads it unless the repository has it, and
        /// records it for `find_layer`. True if it was uploaded. Grant: `registry:Push <registry>/<name>`.
        fn push_layer(repo: &Repository, digest: &str, diff_id: &str, data: &[u8]) -> bool, fake on_push_layer;
        /// Copies a blob between repositories inside the host (e.g. a base image's layer); true if
        /// it was copied. Grants: `registry:Pull` on `from`, `registry:Push` on `to`.
        fn copy_blob(from: &Repository, to: &Repository, digest: &str) -> bool, fake on_copy_blob;
        /// Stores a manifest under `tag` (its blobs pushed first); returns its digest and records
        /// the image in the run's ledger. Grant: `registry:Push <registry>/<name>`.
        fn push_manifest(repo: &Repository, tag: &str, manifest: &Manifest) -> String, fake on_push_manifest;
        /// The digest a tag or digest resolves to, or none. Grant: `registry:Pull <registry>/<name>`.
        fn resolve(repo: &Repository, reference: &str) -> Option<String>, fake on_resolve;
        /// A manifest or index exactly as stored. Grant: `registry:Pull <registry>/<name>`.
        fn pull_manifest(repo: &Repository, reference: &str) -> Manifest, fake on_pull_manifest;
        /// A blob's content, checked against its digest. Grant: `registry:Pull <registry>/<name>`.
        fn pull_blob(repo: &Repository, digest: &str) -> Vec<u8>, fake on_pull_blob;
    }
}
