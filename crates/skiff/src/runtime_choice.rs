//! Which container runtime the real node uses when `--container-runtime` is not given: `oci`
//! (each pod in its own namespaces and cgroup) where the machine allows it, else pods as plain
//! processes, said at start and shown on the Node.

use crate::ContainerRuntime;

/// What the machine allows, gathered once at start by [`probe_host`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HostAbilities {
    /// Skiff runs as root (network namespaces, veths, routes and cgroups need it).
    pub(crate) root: bool,
    /// A child could be put in new network, mount, PID, UTS and IPC namespaces (a container
    /// sandbox or seccomp profile may refuse them even to root).
    pub(crate) namespaces: bool,
    /// `nft` is on the `PATH`: the pod network masquerades and guards its ranges with it.
    pub(crate) nft: bool,
}

/// The runtime the node runs pods on, and why it is not `oci` when it fell back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuntimeChoice {
    /// The runtime to run pods on.
    pub(crate) runtime: ContainerRuntime,
    /// Set when `oci` was the default but the machine refused it: the reason, for the log
    /// and the Node.
    pub(crate) fallback: Option<String>,
}

/// Chooses the runtime: the one `requested` when given, `process` for a server without a node
/// (its flags then only shape the Service network), else `oci` when `host` allows it and
/// `process` with the reason when it does not. Pure, for the table test.
pub(crate) fn choose_runtime(
    requested: Option<ContainerRuntime>,
    runs_pods: bool,
    host: HostAbilities,
) -> RuntimeChoice {
    let chosen = |runtime| RuntimeChoice {
        runtime,
        fallback: None,
    };
    if let Some(runtime) = requested {
        return chosen(runtime);
    }
    if !runs_pods {
        return chosen(ContainerRuntime::Process);
    }
    let refusal = if !host.root {
        Some("skiff does not run as root")
    } else if !host.namespaces {
        Some("this machine refuses new namespaces")
    } else if !host.nft {
        Some("nft is not installed")
    } else {
        None
    };
    match refusal {
        None => chosen(ContainerRuntime::Oci),
        Some(reason) => RuntimeChoice {
            runtime: ContainerRuntime::Process,
            fallback: Some(format!(
                "{reason}: pods run as plain processes on the host's network, without isolation"
            )),
        },
    }
}

/// Finds what this machine allows: whether the process is root, whether new namespaces are
/// permitted, and whether `nft` is on the `PATH`.
pub(crate) fn probe_host() -> HostAbilities {
    let root = nix::unistd::geteuid().is_root();
    HostAbilities {
        root,
        // Without root the namespaces would need a user namespace the runtime does not use.
        namespaces: root && thread_enters_namespaces(),
        nft: program_on_path("nft"),
    }
}

/// Whether a thread may enter new network, mount, PID, UTS and IPC namespaces: a short-lived
/// thread unshares them and ends, taking them with it (the process never forks for this).
fn thread_enters_namespaces() -> bool {
    use nix::sched::{unshare, CloneFlags};
    let flags = CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    let probe = std::thread::Builder::new()
        .name("skiff-ns-probe".into())
        .spawn(move || unshare(flags));
    match probe.map(|thread| thread.join()) {
        Ok(Ok(Ok(()))) => true,
        Ok(Ok(Err(errno))) => {
            tracing::debug!(%errno, "new namespaces are refused");
            false
        }
        _ => false,
    }
}

/// Whether `name` is an executable file in one of the `PATH`'s directories.
fn program_on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime asked for, whether the server runs pods, the machine, then the runtime
    /// chosen and how the fallback's reason begins.
    type Case = (
        Option<ContainerRuntime>,
        bool,
        HostAbilities,
        ContainerRuntime,
        Option<&'static str>,
    );

    const ALLOWED: HostAbilities = HostAbilities {
        root: true,
        namespaces: true,
        nft: true,
    };

    #[test]
    fn the_default_is_oci_where_allowed_and_processes_with_a_reason_elsewhere() {
        let not_root = HostAbilities {
            root: false,
            namespaces: false,
            ..ALLOWED
        };
        let refused = HostAbilities {
            namespaces: false,
            ..ALLOWED
        };
        let no_nft = HostAbilities {
            nft: false,
            ..ALLOWED
        };
        use ContainerRuntime::{Oci, Process};
        let cases: [Case; 9] = [
            (None, true, ALLOWED, Oci, None),
            (
                None,
                true,
                not_root,
                Process,
                Some("skiff does not run as root"),
            ),
            (
                None,
                true,
                refused,
                Process,
                Some("this machine refuses new namespaces"),
            ),
            (None, true, no_nft, Process, Some("nft is not installed")),
            // A server without a node keeps the process runtime's (absent) pod network.
            (None, false, ALLOWED, Process, None),
            // An explicit choice is kept, even where it will fail later with its own error.
            (Some(Process), true, ALLOWED, Process, None),
            (Some(Oci), true, not_root, Oci, None),
            (Some(Oci), false, ALLOWED, Oci, None),
            (Some(Process), true, refused, Process, None),
        ];
        for (requested, runs_pods, host, runtime, reason) in cases {
            let choice = choose_runtime(requested, runs_pods, host);
            assert_eq!(
                choice.runtime, runtime,
                "{requested:?}, runs pods {runs_pods}, {host:?}"
            );
            match reason {
                None => assert_eq!(choice.fallback, None, "{requested:?} {host:?}"),
                Some(reason) => {
                    let said = choice.fallback.unwrap_or_default();
                    assert!(
                        said.starts_with(reason) && said.contains("plain processes"),
                        "{host:?}: {said:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn root_may_enter_new_namespaces_here() {
        // The test machines (CI runs as root) allow them; without root the probe says no.
        let root = nix::unistd::geteuid().is_root();
        assert_eq!(thread_enters_namespaces(), root);
    }

    #[test]
    fn a_missing_program_is_not_on_the_path() {
        assert!(!program_on_path("skiff-no-such-program-anywhere"));
        assert!(program_on_path("sh"), "sh is on every test machine's PATH");
    }
}
