//! The OCI image config and manifest, serialized deterministically.
//!
//! oci-spec keeps labels, annotations and exposed ports in `HashMap`s, whose iteration order
//! differs between runs: every document goes through [`canonical_json`] (keys sorted at every
//! level), so the bytes, and therefore the digests, depend only on the content.

use oci_spec::image::{
    Arch, Config, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use std::collections::{BTreeMap, BTreeSet};
use wharf_plugin_sdk::digest::Sha256;

/// `sha256:<hex>` of `bytes`, computed by the host (a first build's layer is megabytes).
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", Sha256::of(bytes))
}

/// `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts[..] {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.into(),
                arch: arch.into(),
                variant: parts.get(2).filter(|v| !v.is_empty()).map(|v| v.to_string()),
            }),
            _ => Err(format!("`platform` {text:?} must be `os/arch[/variant]`, e.g. `linux/amd64`")),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        self.variant.iter().try_for_each(|v| write!(f, "/{v}"))
    }
}

/// One history line: the instruction text, and whether it made no layer.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryLine {
    pub created_by: String,
    pub empty_layer: bool,
}

/// The image's runtime settings as the Dockerfile leaves them (seeded from the base image).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageState {
    /// In definition order; a redefinition replaces the value in place, as Docker does.
    pub env: Vec<(String, String)>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub author: Option<String>,
}

impl ImageState {
    /// The base image's settings.
    pub fn from_base(base: &ImageConfiguration) -> ImageState {
        let author = base.author().clone();
        let Some(c) = base.config() else { return ImageState { author, ..ImageState::default() } };
        ImageState {
            env: c.env().iter().flatten().map(|e| e.split_once('=').unwrap_or((e.as_str(), ""))).map(own).collect(),
            entrypoint: c.entrypoint().clone(),
            cmd: c.cmd().clone(),
            workdir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
            exposed_ports: c.exposed_ports().iter().flatten().cloned().collect(),
            volumes: c.volumes().iter().flatten().cloned().collect(),
            labels: c.labels().iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
            stop_signal: c.stop_signal().clone(),
            author,
        }
    }

    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn set_env(&mut self, name: String, value: String) {
        match self.env.iter_mut().find(|(k, _)| *k == name) {
            Some(entry) => entry.1 = value,
            None => self.env.push((name, value)),
        }
    }

    fn runtime_config(&self) -> Config {
        let mut b = ConfigBuilder::default();
        if !self.env.is_empty() {
            b = b.env(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>());
        }
        if let Some(e) = &self.entrypoint {
            b = b.entrypoint(e.clone());
        }
        if let Some(c) = &self.cmd {
            b = b.cmd(c.clone());
        }
        if let Some(w) = &self.workdir {
            b = b.working_dir(w.clone());
        }
        if let Some(u) = &self.user {
            b = b.user(u.clone());
        }
        if !self.exposed_ports.is_empty() {
            b = b.exposed_ports(self.exposed_ports.iter().cloned().collect::<Vec<_>>());
        }
        if !self.volumes.is_empty() {
            b = b.volumes(self.volumes.iter().cloned().collect::<Vec<_>>());
        }
        if !self.labels.is_empty() {
            b = b.labels(self.labels.clone().into_iter().collect::<std::collections::HashMap<_, _>>());
        }
        if let Some(s) = &self.stop_signal {
            b = b.stop_signal(s.clone());
        }
        b.build().expect("every field of Config is optional")
    }
}

fn own((k, v): (&str, &str)) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// Everything the config document is made of.
pub struct ConfigParts<'a> {
    pub platform: &'a Platform,
    pub state: &'a ImageState,
    /// Base layers' diff ids first, then this build's.
    pub diff_ids: Vec<String>,
    /// The base image's history (kept as is), then this build's lines.
    pub base_history: Vec<oci_spec::image::History>,
    pub history: &'a [HistoryLine],
    /// RFC 3339 time for `created` (from `source_date_epoch`); absent by default.
    pub created: Option<String>,
}

/// The image config JSON (`application/vnd.oci.image.config.v1+json`).
pub fn config_json(p: ConfigParts) -> Vec<u8> {
    let mut history = p.base_history;
    for line in p.history {
        let mut h = HistoryBuilder::default().created_by(line.created_by.clone()).comment("wharf build-push");
        if let Some(t) = &p.created {
            h = h.created(t.clone());
        }
        if line.empty_layer {
            h = h.empty_layer(true);
        }
        history.push(h.build().expect("history fields are optional"));
    }
    let mut b = ImageConfigurationBuilder::default()
        .architecture(Arch::from(p.platform.arch.as_str()))
        .os(Os::from(p.platform.os.as_str()))
        .config(p.state.runtime_config())
        .rootfs(RootFsBuilder::default().typ("layers").diff_ids(p.diff_ids).build().expect("rootfs is complete"))
        .history(history);
    if let Some(v) = &p.platform.variant {
        b = b.variant(v.clone());
    }
    if let Some(a) = &p.state.author {
        b = b.author(a.clone());
    }
    if let Some(t) = p.created {
        b = b.created(t);
    }
    canonical_json(&b.build().expect("architecture, os and rootfs are set"))
}

/// The image manifest JSON, with its top-level `mediaType` (registries and ECS want it).
pub fn manifest_json(config: Descriptor, layers: Vec<Descriptor>, annotations: BTreeMap<String, String>) -> Vec<u8> {
    let mut b = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers);
    if !annotations.is_empty() {
        b = b.annotations(annotations.into_iter().collect::<std::collections::HashMap<_, _>>());
    }
    canonical_json(&b.build().expect("config and layers are set"))
}

/// Compact JSON with object keys sorted at every level, whatever map type produced them.
pub fn canonical_json(value: &impl serde::Serialize) -> Vec<u8> {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    let value = serde_json::to_value(value).expect("OCI documents serialize");
    serde_json::to_vec(&sort(value)).expect("JSON values serialize")
}

/// RFC 3339 UTC time of a Unix timestamp (civil-from-days, no date crate needed).
pub fn rfc3339(epoch: u64) -> String {
    let (days, secs) = ((epoch / 86_400) as i64, epoch % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_whatever_the_hash_order() {
        let mut state = ImageState::default();
        for i in 0..40 {
            state.labels.insert(format!("label{i}"), "v".into());
            state.exposed_ports.insert(format!("{}/tcp", 8000 + i));
        }
        let platform = Platform::parse("linux/amd64").unwrap();
        let parts = || ConfigParts {
            platform: &platform,
            state: &state,
            diff_ids: vec![],
            base_history: vec![],
            history: &[],
            created: None,
        };
        // Each HashMap has its own random order: many builds, one byte string.
        let first = config_json(parts());
        for _ in 0..20 {
            assert_eq!(config_json(parts()), first);
        }
        let text = String::from_utf8(first).unwrap();
        assert!(text.find("\"label0\"").unwrap() < text.find("\"label1\"").unwrap());
        assert!(text.find("\"8000/tcp\"").unwrap() < text.find("\"8001/tcp\"").unwrap());
        assert!(!text.contains("created"), "{text}");
    }

    #[test]
    fn platforms_and_times() {
        assert_eq!(Platform::parse("linux/arm64/v8").unwrap().variant.as_deref(), Some("v8"));
        assert!(Platform::parse("amd64").is_err());
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
