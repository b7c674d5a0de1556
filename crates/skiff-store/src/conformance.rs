//! The behaviour every [`crate::Store`] backend must show.
