//! Imports of image archives.
