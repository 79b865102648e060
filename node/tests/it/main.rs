//! Integration tests of the bundle engine, one binary: real OpenSSL-made fixtures
//! (`tests/fixtures/generate.sh`) through the public library API.

mod formats;
mod properties;
mod support;
