//! Shoal's ops console (being built).
