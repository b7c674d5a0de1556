//! What a container runs and with which environment, by Kubernetes' rules.
//!
//! - `command` replaces the image's entrypoint and drops its cmd; `args` replace the cmd.
//! - `$(VAR)` in `command`, `args` and `env` values expands to a variable defined before it;
//!   `$$` is a literal `$`; an undefined reference stays as written.
//! - `envFrom` comes first, then `env` in order; later definitions win.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use skiff_client::{Api, Client};
use std::sync::Arc;

use super::runtime::ResolvedImage;
use skiff_api::quantity::{parse_milli, parse_value};

/// The argv a container runs, before variable expansion.
pub fn command_line(container: &Container, image: &ResolvedImage) -> Vec<String> {
    let command = container.command.clone().filter(|c| !c.is_empty());
    let args = container.args.clone().filter(|a| !a.is_empty());
    match (command, args) {
        (Some(command), args) => command
            .into_iter()
            .chain(args.unwrap_or_default())
            .collect(),
        (None, Some(args)) => image.entrypoint.iter().cloned().chain(args).collect(),
        (None, None) => image
            .entrypoint
            .iter()
            .chain(image.cmd.iter())
            .cloned()
            .collect(),
    }
}

/// Expands `$(NAME)` references with `lookup`, as Kubernetes' `expansion.Expand` does: `$$`
/// escapes a `$`, unknown names and unterminated references stay as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut literal_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push_str(&input[literal_start..i]);
                    out.push('$');
                    i += 2;
                    literal_start = i;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        out.push_str(&input[literal_start..i]);
                        match lookup(name) {
                            Some(value) => out.push_str(&value),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        literal_start = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&input[literal_start..]);
    out
}

/// An ordered environment where later definitions replace earlier ones in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    order: Vec<String>,
    values: HashMap<String, String>,
}

impl Environment {
    /// Sets `name`, keeping its first position.
    pub fn set(&mut self, name: &str, value: String) {
        if self.values.insert(name.to_string(), value).is_none() {
            self.order.push(name.to_string());
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }

    /// Every variable, in definition order.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.order
            .iter()
            .map(|k| (k.clone(), self.values[k].clone()))
            .collect()
    }
}

/// What the environment needs to know about where the pod runs.
#[derive(Clone, Debug, Default)]
pub struct PodFacts {
    /// `status.podIP`.
    pub pod_ip: String,
    /// `status.hostIP`.
    pub host_ip: String,
    /// The `kubernetes` Service's address, for `KUBERNETES_SERVICE_HOST/PORT`.
    pub kubernetes_service: Option<(String, u16)>,
    /// The node's allocatable CPU (millicores) and memory (bytes), for `resourceFieldRef`
    /// on containers without limits.
    pub node_allocatable: (i64, i64),
}

/// Why an environment could not be built; the container waits in
/// `CreateContainerConfigError` with this message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Objects the environment and volumes read, fetched once per container start.
struct Sources {
    client: Arc<dyn Client>,
    namespace: String,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Sources {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, ConfigError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::new(self.client.clone(), Some(&self.namespace))
                .map_err(|e| ConfigError(e.to_string()))?;
            let found = api
                .get_opt(name)
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
            self.config_maps.insert(name.to_string(), found);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::new(self.client.clone(), Some(&self.namespace))
                .map_err(|e| ConfigError(e.to_string()))?;
            let found = api
                .get_opt(name)
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
            self.secrets.insert(name.to_string(), found);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// A Secret's value as text.
fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(data) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(String::from_utf8_lossy(&data.0).into_owned());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

/// The value of a `fieldRef`, as the downward API defines the paths.
pub fn field_value(pod: &Pod, path: &str, facts: &PodFacts) -> Option<String> {
    let meta = &pod.metadata;
    let map_text = |m: &Option<BTreeMap<String, String>>| {
        m.as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    let keyed = |prefix: &str| -> Option<&str> {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
    };
    if let Some(key) = keyed("metadata.labels") {
        return Some(
            meta.labels
                .as_ref()
                .and_then(|l| l.get(key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    if let Some(key) = keyed("metadata.annotations") {
        return Some(
            meta.annotations
                .as_ref()
                .and_then(|l| l.get(key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => map_text(&meta.labels),
        "metadata.annotations" => map_text(&meta.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        _ => return None,
    })
}

/// The value of a `resourceFieldRef` (`limits.cpu`, `requests.memory`, ...), divided by its
/// divisor and rounded up, falling back to the node's allocatable for unset limits.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    facts: &PodFacts,
) -> Option<String> {
    let (kind, name) = resource.split_once('.')?;
    let resources = container.resources.as_ref();
    let map = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return None,
    };
    let quantity_text = map.and_then(|m| m.get(name)).map(|q| q.0.clone());
    let is_cpu = name == "cpu";
    if !is_cpu && name != "memory" && name != "ephemeral-storage" {
        return None;
    }
    // Amounts in millicores for CPU, bytes otherwise.
    let amount = match quantity_text {
        Some(text) if is_cpu => parse_milli(&text)?,
        Some(text) => parse_value(&text)?,
        None if kind == "limits" && is_cpu => facts.node_allocatable.0,
        None if kind == "limits" => facts.node_allocatable.1,
        None => 0,
    };
    let divisor = match divisor.filter(|d| !d.is_empty()) {
        Some(d) if is_cpu => parse_milli(d)?,
        Some(d) => parse_value(d)?,
        None if is_cpu => 1000,
        None => 1,
    }
    .max(1);
    Some(((amount + divisor - 1) / divisor).to_string())
}

/// The kubelet's service link variables (`enableServiceLinks`) for `services`:
/// `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT` (and one per named port), and the Docker link
/// family `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT` and `_ADDR`.
/// Services without a cluster IP (headless, or not yet allocated) give none.
pub fn service_link_variables(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for service in services {
        let Some(spec) = &service.spec else {
            continue;
        };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let name = service
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else {
            continue;
        };
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for port in ports {
            if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                let port_name = port_name.to_uppercase().replace('-', "_");
                out.push((
                    format!("{name}_SERVICE_PORT_{port_name}"),
                    port.port.to_string(),
                ));
            }
        }
        let host_port = |port: i32| {
            if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            }
        };
        for (i, port) in ports.iter().enumerate() {
            let protocol = port.protocol.as_deref().unwrap_or("TCP").to_uppercase();
            let lower = protocol.to_lowercase();
            let url = format!("{lower}://{}", host_port(port.port));
            if i == 0 {
                out.push((format!("{name}_PORT"), url.clone()));
            }
            let prefix = format!("{name}_PORT_{}_{protocol}", port.port);
            out.push((prefix.clone(), url));
            out.push((format!("{prefix}_PROTO"), lower));
            out.push((format!("{prefix}_PORT"), port.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// Builds a container's environment: the image's, `envFrom`, `env`, then the variables Skiff
/// always sets.
pub async fn environment(
    client: Arc<dyn Client>,
    pod: &Pod,
    container: &Container,
    image: &ResolvedImage,
    facts: &PodFacts,
) -> Result<Environment, ConfigError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut sources = Sources {
        client,
        namespace,
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    let mut env = Environment::default();
    for (k, v) in &image.env {
        env.set(k, v.clone());
    }
    // Variables the pod defines, which `$(VAR)` may refer to.
    let mut defined = Environment::default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    if let Some((host, port)) = &facts.kubernetes_service {
        // The kubelet's variables for the `kubernetes` Service, named after its port.
        for (k, v) in [
            ("KUBERNETES_SERVICE_HOST".to_string(), host.clone()),
            ("KUBERNETES_SERVICE_PORT".to_string(), port.to_string()),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
                port.to_string(),
            ),
            (
                "KUBERNETES_PORT".to_string(),
                format!("tcp://{host}:{port}"),
            ),
            (
                format!("KUBERNETES_PORT_{port}_TCP"),
                format!("tcp://{host}:{port}"),
            ),
            (
                format!("KUBERNETES_PORT_{port}_TCP_PROTO"),
                "tcp".to_string(),
            ),
            (format!("KUBERNETES_PORT_{port}_TCP_PORT"), port.to_string()),
            (format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host.clone()),
        ] {
            defined.set(&k, v);
        }
    }
    let service_links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    if service_links {
        let api: Api<Service> = Api::new(sources.client.clone(), Some(&sources.namespace))
            .map_err(|e| ConfigError(e.to_string()))?;
        let (services, _) = api
            .list(&skiff_client::ListOptions::default())
            .await
            .map_err(|e| ConfigError(format!("failed to list services: {e}")))?;
        let linked: Vec<Service> = services
            .into_iter()
            // The `kubernetes` Service's variables are set above for every pod.
            .filter(|s| {
                !(sources.namespace == "default"
                    && s.metadata.name.as_deref() == Some("kubernetes"))
            })
            .collect();
        for (k, v) in service_link_variables(&linked) {
            defined.set(&k, v);
        }
    }
    for source in container.env_from.as_deref().unwrap_or_default() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(r) = &source.config_map_ref {
            match sources.config_map(&r.name).await? {
                Some(cm) => {
                    for (k, v) in cm.data.clone().unwrap_or_default() {
                        defined.set(&format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &source.secret_ref {
            match sources.secret(&r.name).await? {
                Some(secret) => {
                    let keys: Vec<String> = secret
                        .data
                        .as_ref()
                        .map(|d| d.keys().cloned().collect())
                        .unwrap_or_default();
                    for k in keys {
                        if let Some(v) = secret_value(secret, &k) {
                            defined.set(&format!("{prefix}{k}"), v);
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for var in container.env.as_deref().unwrap_or_default() {
        let value = if let Some(value) = &var.value {
            let snapshot = defined.clone();
            expand(value, &|name| snapshot.get(name))
        } else if let Some(from) = &var.value_from {
            if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path, facts).ok_or_else(|| {
                    ConfigError(format!("unsupported fieldPath: {}", field.field_path))
                })?
            } else if let Some(resource) = &from.resource_field_ref {
                let target = match resource.container_name.as_deref().filter(|n| !n.is_empty()) {
                    Some(name) => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.iter().find(|c| c.name == name))
                        .unwrap_or(container),
                    None => container,
                };
                resource_value(
                    target,
                    &resource.resource,
                    resource.divisor.as_ref().map(|d| d.0.as_str()),
                    facts,
                )
                .ok_or_else(|| {
                    ConfigError(format!("unsupported resource: {}", resource.resource))
                })?
            } else if let Some(key) = &from.config_map_key_ref {
                let found = sources.config_map(&key.name).await?;
                match found.and_then(|cm| cm.data.as_ref()?.get(&key.key).cloned()) {
                    Some(v) => v,
                    None if key.optional == Some(true) => continue,
                    None if found.is_none() => {
                        return Err(ConfigError(format!("configmap \"{}\" not found", key.name)))
                    }
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in ConfigMap {}/{}",
                            key.key,
                            pod.metadata.namespace.as_deref().unwrap_or(""),
                            key.name
                        )))
                    }
                }
            } else if let Some(key) = &from.secret_key_ref {
                let found = sources.secret(&key.name).await?;
                match found.and_then(|s| secret_value(s, &key.key)) {
                    Some(v) => v,
                    None if key.optional == Some(true) => continue,
                    None if found.is_none() => {
                        return Err(ConfigError(format!("secret \"{}\" not found", key.name)))
                    }
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in Secret {}/{}",
                            key.key,
                            pod.metadata.namespace.as_deref().unwrap_or(""),
                            key.name
                        )))
                    }
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        defined.set(&var.name, value);
    }
    for (k, v) in defined.pairs() {
        env.set(&k, v);
    }
    env.set("HOSTNAME", pod_name.clone());
    env.set("SKIFF_POD_NAME", pod_name);
    env.set(
        "SKIFF_POD_NAMESPACE",
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    env.set("SKIFF_POD_IP", facts.pod_ip.clone());
    env.set(
        "SKIFF_POD_UID",
        pod.metadata.uid.clone().unwrap_or_default(),
    );
    Ok(env)
}

/// The final argv: the command line with `$(VAR)` expanded against the container's env.
pub fn expanded_command(
    container: &Container,
    image: &ResolvedImage,
    env: &Environment,
) -> Vec<String> {
    command_line(container, image)
        .iter()
        .map(|arg| expand(arg, &|name| env.get(name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_and_args_override_the_image_as_kubernetes_says() {
        let image = ResolvedImage {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default-arg".into()],
            ..ResolvedImage::default()
        };
        let cases = [
            (json!({}), vec!["/entry", "default-arg"]),
            (json!({"command": ["/bin/sh"]}), vec!["/bin/sh"]),
            (json!({"args": ["x", "y"]}), vec!["/entry", "x", "y"]),
            (
                json!({"command": ["/bin/sh"], "args": ["-c", "true"]}),
                vec!["/bin/sh", "-c", "true"],
            ),
            (
                json!({"command": [], "args": []}),
                vec!["/entry", "default-arg"],
            ),
        ];
        for (fields, expected) in cases {
            let mut c = fields.clone();
            c["name"] = json!("c");
            let container: Container = serde_json::from_value(c).unwrap();
            assert_eq!(command_line(&container, &image), expected, "{fields}");
        }
    }

    #[test]
    fn variables_expand_like_kubernetes() {
        let lookup = |name: &str| match name {
            "A" => Some("1".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let cases = [
            ("$(A)", "1"),
            ("x$(A)y$(A)", "x1y1"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$1"),
            ("$(MISSING)", "$(MISSING)"),
            ("$(EMPTY)!", "!"),
            ("$(A", "$(A"),
            ("$A", "$A"),
            ("cost: $5", "cost: $5"),
            ("trailing $", "trailing $"),
            ("ünïcode $(A)", "ünïcode 1"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &lookup), expected, "{input}");
        }
    }

    #[test]
    fn service_links_follow_the_kubelet() {
        let services: Vec<Service> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "web-front"}, "spec": {"clusterIP": "127.96.0.10", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns-udp", "port": 53, "protocol": "UDP"},
            ]}},
            {"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}},
        ]))
        .unwrap();
        let vars = service_link_variables(&services);
        let expected: Vec<(String, String)> = [
            ("WEB_FRONT_SERVICE_HOST", "127.96.0.10"),
            ("WEB_FRONT_SERVICE_PORT", "80"),
            ("WEB_FRONT_SERVICE_PORT_HTTP", "80"),
            ("WEB_FRONT_SERVICE_PORT_DNS_UDP", "53"),
            ("WEB_FRONT_PORT", "tcp://127.96.0.10:80"),
            ("WEB_FRONT_PORT_80_TCP", "tcp://127.96.0.10:80"),
            ("WEB_FRONT_PORT_80_TCP_PROTO", "tcp"),
            ("WEB_FRONT_PORT_80_TCP_PORT", "80"),
            ("WEB_FRONT_PORT_80_TCP_ADDR", "127.96.0.10"),
            ("WEB_FRONT_PORT_53_UDP", "udp://127.96.0.10:53"),
            ("WEB_FRONT_PORT_53_UDP_PROTO", "udp"),
            ("WEB_FRONT_PORT_53_UDP_PORT", "53"),
            ("WEB_FRONT_PORT_53_UDP_ADDR", "127.96.0.10"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(vars, expected);
    }

    #[test]
    fn downward_fields_and_resources_resolve() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web", "tier": "a"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c",
                "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}
        }))
        .unwrap();
        let facts = PodFacts {
            pod_ip: "127.128.0.2".into(),
            host_ip: "127.0.0.1".into(),
            kubernetes_service: None,
            node_allocatable: (4000, 8 << 30),
        };
        let cases = [
            ("metadata.name", Some("p")),
            ("metadata.namespace", Some("ns")),
            ("metadata.uid", Some("u")),
            ("metadata.labels['app']", Some("web")),
            ("metadata.labels", Some("app=\"web\"\ntier=\"a\"")),
            ("spec.nodeName", Some("n1")),
            ("status.podIP", Some("127.128.0.2")),
            ("status.hostIP", Some("127.0.0.1")),
            ("spec.bogus", None),
        ];
        for (path, expected) in cases {
            assert_eq!(
                field_value(&pod, path, &facts).as_deref(),
                expected,
                "{path}"
            );
        }
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let resources = [
            ("limits.cpu", None, Some("2")),
            ("limits.cpu", Some("1m"), Some("1500")),
            ("requests.cpu", Some("1m"), Some("250")),
            ("limits.memory", Some("1Mi"), Some("64")),
            ("limits.memory", None, Some("67108864")),
            ("requests.memory", None, Some("0")),
            ("limits.nvidia", None, None),
        ];
        for (resource, divisor, expected) in resources {
            assert_eq!(
                resource_value(c, resource, divisor, &facts).as_deref(),
                expected,
                "{resource} {divisor:?}"
            );
        }
    }
}
