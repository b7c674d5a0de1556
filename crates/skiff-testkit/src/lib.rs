//! Test support shared by Skiff's test suites, never linked into Skiff itself:
//!
//! - [`images`]: real OCI test images (the demo server, a busybox `httpd`, a busybox shell)
//!   built from files on this machine, written once per test run as archives cached under
//!   the target directory, and named under `127.0.0.1:9/skiff-test/`, a loopback port
//!   nothing serves, so an accidental pull fails at once and never leaves the machine;
//! - [`registry`]: a real distribution registry (Debian's `docker-registry`) on a free
//!   loopback port, plain HTTP, with basic auth or with TLS, that test images are pushed to;
//! - [`rootfs`]: a test image unpacked into one root directory, to run its programs without
//!   Skiff and so check the image holds all they need.

pub mod images;
pub mod registry;
pub mod rootfs;
