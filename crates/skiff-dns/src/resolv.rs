//! The resolv.conf pods get.
