//! Where pod and container cgroups live, as the kubelet's cgroupfs driver lays them out:
//!
//! ```text
//! <root>/kubepods/                       Guaranteed pods' parent (node allocatable)
//! <root>/kubepods/pod<uid>/<container>
//! <root>/kubepods/burstable/pod<uid>/<container>
//! <root>/kubepods/besteffort/pod<uid>/<container>
//! ```
//!
//! The root is configurable (`skiff` by default at the node agent, a fresh one per test), so
//! Skiff never meddles with a kubelet's `kubepods` on the same machine. Paths are relative to
//! a hierarchy's mount point; every component is checked, so no pod UID or container ID can
//! climb out of the root or name a controller's file.

use crate::qos::QosClass;

/// The longest name one directory entry may have.
const MAX_COMPONENT_LEN: usize = 255;

/// Why a name cannot be a cgroup path component.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cgroup name {name:?}: {reason}")]
pub struct NameError {
    /// The refused name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A cgroup's path below the mount point of a hierarchy, such as
/// `skiff/kubepods/burstable/pod1234/abcd`: checked components joined by `/`, never absolute,
/// never empty unless it is the hierarchy's root itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CgroupPath(String);

impl CgroupPath {
    /// The hierarchy's root cgroup.
    pub fn root() -> CgroupPath {
        CgroupPath(String::new())
    }

    /// Parses a relative path such as `skiff/test-1` (a leading or trailing `/` is ignored),
    /// checking every component.
    pub fn parse(path: &str) -> Result<CgroupPath, NameError> {
        let mut out = CgroupPath::root();
        for component in path.trim_matches('/').split('/').filter(|c| !c.is_empty()) {
            out = out.join(component)?;
        }
        Ok(out)
    }

    /// This path with one more component. Components are 1 to 255 ASCII letters, digits, `-`
    /// or `_`: what pod UIDs and container IDs are made of, and never `.`, `..` or a
    /// controller file's dotted name.
    pub fn join(&self, component: &str) -> Result<CgroupPath, NameError> {
        let refuse = |reason| NameError {
            name: component.to_string(),
            reason,
        };
        if component.is_empty() {
            return Err(refuse("it is empty"));
        }
        if component.len() > MAX_COMPONENT_LEN {
            return Err(refuse("it is longer than 255 bytes"));
        }
        if !component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(refuse(
                "it may hold only ASCII letters, digits, '-' and '_'",
            ));
        }
        Ok(if self.0.is_empty() {
            CgroupPath(component.to_string())
        } else {
            CgroupPath(format!("{}/{component}", self.0))
        })
    }

    /// The path relative to a mount point (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as an OCI runtime's `linux.cgroupsPath` takes it with the cgroupfs driver:
    /// absolute from the hierarchy's root, such as `/skiff/kubepods/pod1234/abcd`.
    pub fn runtime_path(&self) -> String {
        format!("/{}", self.0)
    }

    /// The components from the top down.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The enclosing cgroup; `None` for the root.
    pub fn parent(&self) -> Option<CgroupPath> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.rsplit_once('/') {
            Some((parent, _)) => CgroupPath(parent.to_string()),
            None => CgroupPath::root(),
        })
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &CgroupPath) -> bool {
        other.0.is_empty()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

impl std::fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kubelet's cgroup tree under one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLayout {
    root: CgroupPath,
}

impl CgroupLayout {
    /// The layout under `root`, a relative path such as `skiff` (empty for the hierarchy's
    /// root, where the kubelet itself puts `kubepods`).
    pub fn new(root: &str) -> Result<CgroupLayout, NameError> {
        Ok(CgroupLayout {
            root: CgroupPath::parse(root)?,
        })
    }

    /// The root everything of this layout lives under.
    pub fn root(&self) -> &CgroupPath {
        &self.root
    }

    /// `<root>/kubepods`: every pod's ancestor, and the parent of `Guaranteed` pods.
    pub fn kubepods(&self) -> CgroupPath {
        self.child(&self.root, "kubepods")
    }

    /// The parent of a class's pods: `kubepods` itself for `Guaranteed`, else its
    /// `burstable` or `besteffort` child.
    pub fn tier(&self, qos: QosClass) -> CgroupPath {
        match qos {
            QosClass::Guaranteed => self.kubepods(),
            QosClass::Burstable => self.child(&self.kubepods(), "burstable"),
            QosClass::BestEffort => self.child(&self.kubepods(), "besteffort"),
        }
    }

    /// A pod's cgroup, `pod<uid>` under its class's tier.
    pub fn pod(&self, qos: QosClass, uid: &str) -> Result<CgroupPath, NameError> {
        if uid.is_empty() {
            return Err(NameError {
                name: String::new(),
                reason: "a pod UID is needed",
            });
        }
        self.tier(qos).join(&format!("pod{uid}"))
    }

    /// A container's cgroup: a child of its pod's, named by the container's ID.
    pub fn container(&self, pod: &CgroupPath, container_id: &str) -> Result<CgroupPath, NameError> {
        pod.join(container_id)
    }

    fn child(&self, parent: &CgroupPath, fixed: &str) -> CgroupPath {
        // The fixed names are valid components, so joining them cannot fail.
        match parent.join(fixed) {
            Ok(path) => path,
            Err(_) => CgroupPath(format!("{parent}/{fixed}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_placed_by_qos_class_as_the_cgroupfs_driver_does() {
        let layout = CgroupLayout::new("skiff").unwrap();
        let uid = "5f0c7a1e-2b4d-4c1e-9a57-0d1e2f3a4b5c";
        let cases = [
            (
                QosClass::Guaranteed,
                "skiff/kubepods/pod5f0c7a1e-2b4d-4c1e-9a57-0d1e2f3a4b5c",
            ),
            (
                QosClass::Burstable,
                "skiff/kubepods/burstable/pod5f0c7a1e-2b4d-4c1e-9a57-0d1e2f3a4b5c",
            ),
            (
                QosClass::BestEffort,
                "skiff/kubepods/besteffort/pod5f0c7a1e-2b4d-4c1e-9a57-0d1e2f3a4b5c",
            ),
        ];
        for (qos, want) in cases {
            let pod = layout.pod(qos, uid).unwrap();
            assert_eq!(pod.as_str(), want, "{qos}");
            let container = layout.container(&pod, "0123abcd").unwrap();
            assert_eq!(container.as_str(), format!("{want}/0123abcd"));
            assert_eq!(container.runtime_path(), format!("/{want}/0123abcd"));
            assert_eq!(container.parent(), Some(pod.clone()));
            assert!(container.is_within(&pod) && container.is_within(&layout.kubepods()));
            assert!(!pod.is_within(&container));
        }
        assert_eq!(layout.kubepods().as_str(), "skiff/kubepods");
        assert_eq!(layout.tier(QosClass::Guaranteed), layout.kubepods());
    }

    #[test]
    fn roots_may_be_nested_or_empty() {
        let nested = CgroupLayout::new("/skiff/test-42/").unwrap();
        assert_eq!(nested.root().as_str(), "skiff/test-42");
        assert_eq!(
            nested.tier(QosClass::Burstable).as_str(),
            "skiff/test-42/kubepods/burstable"
        );
        let top = CgroupLayout::new("").unwrap();
        assert_eq!(top.kubepods().as_str(), "kubepods");
        assert_eq!(top.kubepods().runtime_path(), "/kubepods");
        assert_eq!(top.root().parent(), None);
        assert_eq!(top.kubepods().parent(), Some(CgroupPath::root()));
    }

    #[test]
    fn names_that_could_escape_or_collide_are_refused() {
        let layout = CgroupLayout::new("skiff").unwrap();
        let pod = layout.pod(QosClass::Burstable, "uid").unwrap();
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../../etc",
            "cpu.shares",
            "name with space",
            "nul\0",
            "ünïcode",
        ] {
            assert!(layout.container(&pod, bad).is_err(), "{bad:?} accepted");
        }
        assert!(layout.container(&pod, &"a".repeat(256)).is_err());
        assert!(layout.container(&pod, &"a".repeat(255)).is_ok());
        assert!(layout.pod(QosClass::Burstable, "").is_err());
        assert!(layout.pod(QosClass::Burstable, "../x").is_err());
        assert!(CgroupLayout::new("skiff/../etc").is_err());
        let err = layout.container(&pod, "a.b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid cgroup name \"a.b\": it may hold only ASCII letters, digits, '-' and '_'"
        );
    }

    #[test]
    fn within_compares_whole_components() {
        let a = CgroupPath::parse("skiff/pod1").unwrap();
        let b = CgroupPath::parse("skiff/pod10").unwrap();
        assert!(!b.is_within(&a));
        assert!(a.is_within(&CgroupPath::root()));
        assert_eq!(
            CgroupPath::parse("x/y/z")
                .unwrap()
                .components()
                .collect::<Vec<_>>(),
            ["x", "y", "z"]
        );
    }
}
