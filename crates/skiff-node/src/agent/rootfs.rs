//! Running a container from its image's files.
//!
//! With isolation (root and `unshare`), the container's mount namespace gets an overlay whose
//! lower layers are the image's read-only snapshots and whose upper and work directories are
//! in the container's directory under the pod directory, so writes never reach the content
//! store. The pod's volumes, `/proc`, a minimal `/dev`, and kubelet's `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf` are mounted into it; then the command runs with that
//! root and working directory. Every mount lives in the namespace and goes with it; the upper
//! directory goes with the pod directory.
//!
//! Without isolation, the command runs from the image's merged tree without a root of its own:
//! the program is found inside the tree (its symbolic links followed within it) and the
//! working directory is the tree's.

use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::runtime::ImageRoot;
use super::sandbox::{sh_quote, Mount};

/// The device nodes a container's `/dev` gets from the host.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// How deep symbolic links are followed inside an image before giving up (Linux's limit).
const MAX_LINK_HOPS: u32 = 40;

/// The directories of one container run's root: the overlay's mount point and its upper and
/// work directories, under the container's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDirs {
    /// Where the root is assembled.
    pub root: PathBuf,
    /// The overlay's upper directory: everything the container writes.
    pub upper: PathBuf,
    /// overlayfs' work directory.
    pub work: PathBuf,
    /// Where the generated `/etc` files are written before being bound in.
    pub etc: PathBuf,
    /// Created once the root is assembled, just before the command runs.
    pub ready: PathBuf,
}

impl RunDirs {
    /// The directories under `container_dir`.
    pub fn under(container_dir: &Path) -> RunDirs {
        RunDirs {
            root: container_dir.join("rootfs"),
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
            etc: container_dir.join("etc"),
            ready: container_dir.join("root-ready"),
        }
    }

    /// Creates them empty: a new run starts from the image as it is, as a new container does.
    pub fn prepare(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.ready) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for dir in [&self.upper, &self.work] {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for dir in [&self.root, &self.upper, &self.work, &self.etc] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }
}

/// The files kubelet writes for a container's `/etc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcFiles {
    /// `/etc/hosts`.
    pub hosts: String,
    /// `/etc/hostname`.
    pub hostname: String,
    /// `/etc/resolv.conf`.
    pub resolv_conf: String,
}

/// The node's own files kubelet starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFiles {
    /// The node's `/etc/hosts`, which pods on the host's network get.
    pub hosts: String,
    /// The node's `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// The node's host name, which pods on the host's network get.
    pub hostname: String,
}

impl HostFiles {
    /// This machine's.
    pub fn read() -> HostFiles {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        HostFiles {
            hosts: read("/etc/hosts"),
            resolv_conf: read("/etc/resolv.conf"),
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        }
    }
}

/// The domain of pods' hostnames (kubelet's `--cluster-domain` default).
const CLUSTER_DOMAIN: &str = "cluster.local";

/// The hostname a pod's containers see: the node's on the host's network, else the pod's
/// `hostname` or its name (at most 63 characters, as kubelet truncates it).
pub fn pod_hostname(pod: &Pod, host: &HostFiles) -> String {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.host_network).unwrap_or(false) {
        return host.hostname.clone();
    }
    let name = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut name: String = name.chars().take(63).collect();
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    name
}

impl EtcFiles {
    /// kubelet's managed files for `pod` at `pod_ip`: its hosts file (the standard entries and
    /// the pod's own, or the node's file on the host's network, then `hostAliases`), its
    /// hostname, and the node's resolver configuration.
    pub fn for_pod(pod: &Pod, pod_ip: &str, host: &HostFiles) -> EtcFiles {
        let spec = pod.spec.as_ref();
        let hostname = pod_hostname(pod, host);
        let mut hosts = if spec.and_then(|s| s.host_network).unwrap_or(false) {
            format!(
                "# Kubernetes-managed hosts file (host network).\n{}",
                host.hosts
            )
        } else {
            let mut hosts = String::from(
                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
            );
            let subdomain = spec
                .and_then(|s| s.subdomain.as_deref())
                .filter(|d| !d.is_empty());
            match subdomain {
                Some(subdomain) => {
                    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                    hosts.push_str(&format!(
                        "{pod_ip}\t{hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}\t{hostname}\n"
                    ));
                }
                None => hosts.push_str(&format!("{pod_ip}\t{hostname}\n")),
            }
            hosts
        };
        let aliases = spec
            .and_then(|s| s.host_aliases.as_deref())
            .unwrap_or_default();
        if !aliases.is_empty() {
            hosts.push_str("\n# Entries added by HostAliases.\n");
            for alias in aliases {
                let names = alias.hostnames.clone().unwrap_or_default().join("\t");
                hosts.push_str(&format!("{}\t{names}\n", alias.ip));
            }
        }
        EtcFiles {
            hosts,
            hostname: format!("{hostname}\n"),
            resolv_conf: host.resolv_conf.clone(),
        }
    }

    /// Writes them into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("hosts"), &self.hosts)?;
        std::fs::write(dir.join("hostname"), &self.hostname)?;
        std::fs::write(dir.join("resolv.conf"), &self.resolv_conf)
    }
}

/// The resolv.conf kubelet gives `pod` for its `dnsPolicy` and `dnsConfig`, with `dns` as the
/// cluster DNS and the node's own file as the host's.
pub fn pod_resolv_conf(pod: &Pod, host: &HostFiles, dns: &super::ClusterDnsSettings) -> String {
    let node = skiff_dns::resolv::NodeDnsSettings {
        cluster_dns: dns.servers.clone(),
        cluster_domain: dns.domain.clone(),
        host: Some(skiff_dns::resolv::parse_resolv_conf(&host.resolv_conf).config),
        node_ips: Vec::new(),
    };
    let formed = skiff_dns::resolv::pod_dns(&node, pod);
    for event in &formed.events {
        tracing::warn!(
            pod = pod.metadata.name.as_deref().unwrap_or_default(),
            reason = event.reason,
            message = %event.message,
            "pod DNS configuration"
        );
    }
    formed.config.render()
}

/// What a container needs to run from its image with isolation.
#[derive(Clone, Debug)]
pub struct RootedRun<'a> {
    /// The `unshare` program.
    pub unshare: &'a Path,
    /// The image's files.
    pub image: &'a ImageRoot,
    /// The run's directories.
    pub dirs: &'a RunDirs,
    /// The pod's volumes as this container mounts them.
    pub mounts: &'a [Mount],
    /// The hostname.
    pub hostname: &'a str,
    /// The working directory inside the image (`/` when none is set).
    pub working_dir: &'a str,
    /// Who the command runs as.
    pub run_as: RunAs,
}

/// The user and group a container's processes run as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunAs {
    /// The user ID.
    pub uid: u32,
    /// The group ID.
    pub gid: u32,
}

impl RunAs {
    /// `unshare`'s options that switch to this user once inside the root.
    pub fn unshare_options(&self) -> [String; 2] {
        [
            format!("--setgid={}", self.gid),
            format!("--setuid={}", self.uid),
        ]
    }
}

/// Resolves an image's `USER` (`user`, `uid`, `user:group`, `uid:gid`; empty is root) against
/// the image's `/etc/passwd` and `/etc/group`, as the OCI runtimes do: a name must be listed,
/// a number need not be; without a group, the user's primary group from `passwd`, else 0.
pub fn resolve_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<RunAs, String> {
    let (user, group_spec) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let users: Vec<Vec<&str>> = passwd
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 4)
        .collect();
    let (uid, primary_gid) = if user.is_empty() {
        (0, Some(0))
    } else if let Ok(uid) = user.parse::<u32>() {
        let primary = users
            .iter()
            .find(|f| f[2].parse::<u32>().ok() == Some(uid))
            .and_then(|f| f[3].parse::<u32>().ok());
        (uid, primary)
    } else {
        let entry = users.iter().find(|f| f[0] == user).ok_or_else(|| {
            format!("unable to find user {user}: no matching entries in passwd file")
        })?;
        let uid = entry[2]
            .parse::<u32>()
            .map_err(|_| format!("invalid uid for user {user} in passwd file"))?;
        (uid, entry[3].parse::<u32>().ok())
    };
    let gid = match group_spec.filter(|g| !g.is_empty()) {
        None => primary_gid.unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .unwrap_or("")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse::<u32>().ok())
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
    };
    Ok(RunAs { uid, gid })
}

/// The text of `path` as the image has it: from its merged tree, or from the top-most layer
/// holding it.
pub fn image_file(image: &ImageRoot, path: &str) -> Option<String> {
    let dirs: Vec<&PathBuf> = match image {
        ImageRoot::Overlay(dirs) => dirs.iter().collect(),
        ImageRoot::Merged(dir) => vec![dir],
    };
    dirs.into_iter()
        .filter_map(|dir| resolve_in_root(dir, path))
        .find_map(|file| std::fs::read_to_string(file).ok())
}

/// A path inside the container's root, as the shell script names it.
fn inside(root: &Path, path: &str) -> String {
    let relative = path.trim_start_matches('/');
    sh_quote(&root.join(relative).to_string_lossy())
}

/// The argv that assembles the container's root in new mount and UTS namespaces and runs
/// `command` in it.
pub fn rooted_argv(run: &RootedRun<'_>, command: &[String]) -> Vec<String> {
    let root = &run.dirs.root;
    let q = |p: &Path| sh_quote(&p.to_string_lossy());
    let lower = match run.image {
        ImageRoot::Overlay(dirs) => dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":"),
        ImageRoot::Merged(dir) => dir.to_string_lossy().into_owned(),
    };
    let mut script = String::from("set -e\nmount --make-rprivate / 2>/dev/null || true\n");
    script.push_str(&format!(
        "mount -t overlay overlay -o {} {}\n",
        sh_quote(&format!(
            "lowerdir={lower},upperdir={},workdir={}",
            run.dirs.upper.to_string_lossy(),
            run.dirs.work.to_string_lossy()
        )),
        q(root)
    ));
    // A bind target that is a symbolic link in the image would be followed on the host's
    // side: it is replaced by a plain file or directory first.
    let bind = |script: &mut String, source: &Path, target: &str, read_only: bool| {
        let source = q(source);
        let target = inside(root, target);
        script.push_str(&format!(
            "if [ -L {target} ]; then rm -f {target}; fi\nif [ -d {source} ]; then mkdir -p {target}; else mkdir -p \"$(dirname {target})\"; [ -e {target} ] || : > {target}; fi\nmount --bind {source} {target}\n"
        ));
        if read_only {
            script.push_str(&format!("mount -o remount,bind,ro {target}\n"));
        }
    };
    for m in run.mounts {
        bind(&mut script, &m.source, &m.target, m.read_only);
    }
    let proc_dir = inside(root, "/proc");
    script.push_str(&format!(
        "mkdir -p {proc_dir}\nmount -t proc proc {proc_dir} 2>/dev/null || mount --rbind /proc {proc_dir}\n"
    ));
    let dev = inside(root, "/dev");
    script.push_str(&format!(
        "mkdir -p {dev}\nmount -t tmpfs -o nosuid,mode=0755 tmpfs {dev}\n"
    ));
    for device in DEVICES {
        let node = inside(root, &format!("/dev/{device}"));
        script.push_str(&format!(": > {node}\nmount --bind /dev/{device} {node}\n"));
    }
    let shm = inside(root, "/dev/shm");
    let pts = inside(root, "/dev/pts");
    script.push_str(&format!(
        "mkdir -p {shm} {pts}\nmount -t tmpfs -o nosuid,nodev,noexec,mode=1777 shm {shm}\nmount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts {pts} 2>/dev/null || true\n"
    ));
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        script.push_str(&format!(
            "ln -s {} {}\n",
            sh_quote(target),
            inside(root, &format!("/dev/{link}"))
        ));
    }
    for file in ["hosts", "hostname", "resolv.conf"] {
        bind(
            &mut script,
            &run.dirs.etc.join(file),
            &format!("/etc/{file}"),
            false,
        );
    }
    script.push_str(&format!(
        "echo {} > /proc/sys/kernel/hostname 2>/dev/null || true\n",
        sh_quote(run.hostname)
    ));
    script.push_str(&format!("mkdir -p {}\n", inside(root, run.working_dir)));
    script.push_str(&format!(": > {}\n", q(&run.dirs.ready)));
    let [setgid, setuid] = run.run_as.unshare_options();
    script.push_str(&format!(
        "set +e\nexec {} --root={} --wd={} {setgid} {setuid} -- \"$@\"\n",
        q(run.unshare),
        q(root),
        sh_quote(run.working_dir)
    ));
    let mut argv = vec![
        run.unshare.to_string_lossy().into_owned(),
        "--mount".to_string(),
        "--uts".to_string(),
        "--".to_string(),
        "/bin/sh".to_string(),
        "-c".to_string(),
        script,
        "skiff-container".to_string(),
    ];
    argv.extend(command.iter().cloned());
    argv
}

/// `path` resolved inside `root` as the kernel would after a chroot: `..` never climbs out,
/// and symbolic links (absolute ones meant against `root`) are followed within it. `None` when
/// nothing is there or the links loop.
pub fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut pending: Vec<String> = components(path);
    pending.reverse();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "." | "" => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);
        let metadata = std::fs::symlink_metadata(&candidate).ok()?;
        if metadata.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return None;
            }
            let target = std::fs::read_link(&candidate).ok()?;
            let target = target.to_string_lossy();
            if target.starts_with('/') {
                resolved.clear();
            }
            let mut more = components(&target);
            more.reverse();
            pending.extend(more);
        } else {
            resolved.push(part);
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Some(out)
}

fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

/// The program `name` inside `root`: a path is taken as is, a bare name is looked up in the
/// directories of `path_env` (the container's `PATH`), as `execvp` does after a chroot.
pub fn find_program(root: &Path, name: &str, path_env: &str) -> Option<PathBuf> {
    let is_program = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    if name.contains('/') {
        return resolve_in_root(root, name).filter(|p| is_program(p));
    }
    path_env
        .split(':')
        .filter(|dir| !dir.is_empty())
        .filter_map(|dir| resolve_in_root(root, &format!("{dir}/{name}")))
        .find(|p| is_program(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rooted_script_mounts_the_overlay_first_and_execs_inside_the_root() {
        let dirs = RunDirs::under(Path::new("/pods/u/containers/c"));
        let image = ImageRoot::Overlay(vec!["/s/top".into(), "/s/base".into()]);
        let mounts = [Mount {
            source: "/pods/u/volumes/data".into(),
            target: "/data".into(),
            read_only: true,
        }];
        let argv = rooted_argv(
            &RootedRun {
                unshare: Path::new("/usr/bin/unshare"),
                image: &image,
                dirs: &dirs,
                mounts: &mounts,
                hostname: "web-0",
                working_dir: "/srv",
                run_as: RunAs { uid: 10, gid: 20 },
            },
            &["cat".to_string(), "/etc/motd".to_string()],
        );
        assert_eq!(&argv[..4], &["/usr/bin/unshare", "--mount", "--uts", "--"]);
        assert_eq!(&argv[argv.len() - 2..], &["cat", "/etc/motd"]);
        let script = &argv[6];
        let overlay = script
            .find("mount -t overlay overlay -o 'lowerdir=/s/top:/s/base,upperdir=/pods/u/containers/c/upper,workdir=/pods/u/containers/c/work' '/pods/u/containers/c/rootfs'")
            .expect(script);
        let volume = script
            .find("mount --bind '/pods/u/volumes/data' '/pods/u/containers/c/rootfs/data'")
            .expect(script);
        assert!(overlay < volume, "{script}");
        assert!(script.contains("mount -o remount,bind,ro '/pods/u/containers/c/rootfs/data'"));
        assert!(script.contains("mount -t proc proc '/pods/u/containers/c/rootfs/proc'"));
        assert!(script.contains("mount --bind /dev/null '/pods/u/containers/c/rootfs/dev/null'"));
        assert!(script.contains(
            "mount --bind '/pods/u/containers/c/etc/hosts' '/pods/u/containers/c/rootfs/etc/hosts'"
        ));
        assert!(script.ends_with(
            "exec '/usr/bin/unshare' --root='/pods/u/containers/c/rootfs' --wd='/srv' --setgid=20 --setuid=10 -- \"$@\"\n"
        ));
        let merged = rooted_argv(
            &RootedRun {
                image: &ImageRoot::Merged("/s/merged".into()),
                ..RootedRun {
                    unshare: Path::new("/usr/bin/unshare"),
                    image: &image,
                    dirs: &dirs,
                    mounts: &[],
                    hostname: "p",
                    working_dir: "/",
                    run_as: RunAs::default(),
                }
            },
            &["true".to_string()],
        );
        assert!(
            merged[6].contains("'lowerdir=/s/merged,upperdir="),
            "{}",
            merged[6]
        );
    }

    #[test]
    fn programs_resolve_inside_the_root_following_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("bin/busybox"), b"#!").unwrap();
        std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("../../bin/busybox", root.join("usr/bin/env")).unwrap();
        std::os::unix::fs::symlink("/bin/loop", root.join("bin/loop")).unwrap();
        let busybox = root.join("bin/busybox");
        assert_eq!(
            find_program(root, "sh", "/usr/bin:/bin"),
            Some(busybox.clone())
        );
        assert_eq!(
            find_program(root, "env", "/usr/bin:/bin"),
            Some(busybox.clone())
        );
        assert_eq!(find_program(root, "/bin/sh", ""), Some(busybox.clone()));
        assert_eq!(
            find_program(root, "/../../bin/sh", ""),
            Some(busybox),
            "`..` never climbs out of the root"
        );
        assert_eq!(find_program(root, "loop", "/bin"), None);
        assert_eq!(find_program(root, "missing", "/bin"), None);
    }

    #[test]
    fn image_users_resolve_as_oci_runtimes_resolve_them() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nweb:x:101:102::/srv:/bin/false\n";
        let group = "root:x:0:\nwww:x:33:\n";
        let cases = [
            ("", Ok(RunAs { uid: 0, gid: 0 })),
            ("web", Ok(RunAs { uid: 101, gid: 102 })),
            ("101", Ok(RunAs { uid: 101, gid: 102 })),
            ("4000", Ok(RunAs { uid: 4000, gid: 0 })),
            ("web:www", Ok(RunAs { uid: 101, gid: 33 })),
            (
                "4000:5000",
                Ok(RunAs {
                    uid: 4000,
                    gid: 5000,
                }),
            ),
            (
                "nobody",
                Err("unable to find user nobody: no matching entries in passwd file".to_string()),
            ),
            (
                "web:staff",
                Err("unable to find group staff: no matching entries in group file".to_string()),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                resolve_user(spec, Some(passwd), Some(group)),
                want,
                "{spec:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let (top, base) = (dir.path().join("top"), dir.path().join("base"));
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(base.join("etc/passwd"), "base").unwrap();
        std::fs::write(base.join("etc/group"), "base group").unwrap();
        std::fs::write(top.join("etc/passwd"), "top").unwrap();
        let layers = ImageRoot::Overlay(vec![top, base]);
        assert_eq!(image_file(&layers, "/etc/passwd").as_deref(), Some("top"));
        assert_eq!(
            image_file(&layers, "/etc/group").as_deref(),
            Some("base group")
        );
        assert_eq!(image_file(&layers, "/etc/shadow"), None);
    }

    #[test]
    fn a_pods_resolv_conf_follows_its_dns_policy() {
        let host = HostFiles {
            hosts: String::new(),
            resolv_conf: "search corp.example\nnameserver 198.18.250.53\n".into(),
            hostname: "node-a".into(),
        };
        let dns = super::super::ClusterDnsSettings {
            servers: vec!["198.19.4.10".parse().unwrap()],
            domain: "cluster.local".into(),
        };
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-0", "namespace": "shop"},
                "spec": spec,
            }))
            .unwrap()
        };
        assert_eq!(
            pod_resolv_conf(&pod(serde_json::json!({"containers": []})), &host, &dns),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 198.19.4.10\noptions ndots:5\n",
            "ClusterFirst is the default"
        );
        assert_eq!(
            pod_resolv_conf(
                &pod(serde_json::json!({"containers": [], "dnsPolicy": "Default"})),
                &host,
                &dns
            ),
            "search corp.example\nnameserver 198.18.250.53\n"
        );
        assert_eq!(
            pod_resolv_conf(
                &pod(serde_json::json!({"containers": [], "dnsPolicy": "None",
                    "dnsConfig": {"nameservers": ["198.18.250.1"], "searches": ["a.example"],
                                  "options": [{"name": "ndots", "value": "2"}]}})),
                &host,
                &dns
            ),
            "search a.example\nnameserver 198.18.250.1\noptions ndots:2\n"
        );
        assert_eq!(
            pod_resolv_conf(
                &pod(serde_json::json!({"containers": [], "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet"})),
                &host,
                &dns
            ),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 198.19.4.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn etc_files_are_kubelets() {
        let host = HostFiles {
            hosts: "127.0.0.1 localhost node-a\n".into(),
            resolv_conf: "nameserver 198.18.250.53\n".into(),
            hostname: "node-a".into(),
        };
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-0", "namespace": "shop"},
                "spec": spec,
            }))
            .unwrap()
        };
        let plain = EtcFiles::for_pod(
            &pod(serde_json::json!({"containers": []})),
            "127.128.0.5",
            &host,
        );
        assert_eq!(
            plain.hosts,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n127.128.0.5\tweb-0\n"
        );
        assert_eq!(plain.hostname, "web-0\n");
        assert_eq!(plain.resolv_conf, "nameserver 198.18.250.53\n");
        let named = EtcFiles::for_pod(
            &pod(
                serde_json::json!({"containers": [], "hostname": "db", "subdomain": "backend",
                "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["a.test", "b.test"]}]}),
            ),
            "127.128.0.6",
            &host,
        );
        assert!(
            named.hosts.ends_with("127.128.0.6\tdb.backend.shop.svc.cluster.local\tdb\n\n# Entries added by HostAliases.\n10.0.0.9\ta.test\tb.test\n"),
            "{}",
            named.hosts
        );
        assert_eq!(named.hostname, "db\n");
        let on_host = EtcFiles::for_pod(
            &pod(serde_json::json!({"containers": [], "hostNetwork": true})),
            "127.0.0.1",
            &host,
        );
        assert_eq!(
            on_host.hosts,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost node-a\n"
        );
        assert_eq!(on_host.hostname, "node-a\n");
    }
}
