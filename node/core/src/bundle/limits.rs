//! The caps on what one input file and one bundle may ask of certraft, in one place.
//!
//! Everything here is checked **before** the work it bounds: a file's size before it is
//! parsed, a key derivation's parameters before the derivation runs, a bundle's size before
//! its chain is ordered. The node parses uploads on a blocking thread under a semaphore; these
//! caps bound what each of those parses can cost, whoever sent the file.
//!
//! | Cap | Value | Why this value |
//! |---|---|---|
//! | [`MAX_FILE_BYTES`] | 1 MiB | a PEM leaf + chain + key is 4–10 KiB; an RSA-8192 PKCS#12 with a long chain stays under 64 KiB |
//! | [`MAX_CERTS_PER_FILE`], [`MAX_CERTS_PER_BUNDLE`] | 64 | a leaf and its chain are 2–4 certificates; 64 leaves room for cross-signs and extras |
//! | [`MAX_KEYS_PER_FILE`] | 8 | a bundle takes exactly one key; more than a few in one file is a keystore, not a bundle |
//! | [`MAX_SAN_NAMES_PER_CERT`] | 1,000 | Let's Encrypt issues at most 100 names; public CAs a few hundred |
//! | [`MAX_BUNDLE_DER_BYTES`] | 256 KiB | leaf + chain as served in every handshake; real chains are 3–10 KiB |
//! | [`MAX_KDF_ITERATIONS`] | 10,000,000 | PBKDF2 and PKCS#12 KDF/MAC counts; see below |
//! | [`MAX_SCRYPT_MEMORY`], [`MAX_SCRYPT_PARALLELISM`] | 256 MiB, p ≤ 16 | see below |
//! | [`MAX_KDF_RUNS_PER_FILE`] | 8 | key derivations one file may ask for; an OpenSSL PKCS#12 asks for 3 |
//!
//! ## Password-based key derivation
//!
//! An encrypted key or PKCS#12 file carries its own KDF parameters, so without a cap a
//! 300-byte file can ask for a terabyte of memory (scrypt) or hours of CPU (PBKDF2).
//!
//! - **Iterations** (PBKDF2 under PBES2; the PKCS#12 KDF of `pbeWithSHAAnd…` ciphers and of
//!   the MAC): at most 10,000,000. Defaults for comparison: OpenSSL 2,048, Java's PKCS#12
//!   10,000, OWASP's 2023 advice for PBKDF2-HMAC-SHA256 600,000, certraft's own export
//!   600,000. At the cap one derivation takes a few seconds.
//! - **scrypt** (RFC 7914) allocates `128·r·(N + p + 1)` bytes: the `V` array of `128·N·r`
//!   bytes dominates, and that term is capped at 256 MiB; `p` (sequential passes over `V`) is
//!   at most 16; `N` must be a power of two above 1. The remaining `128·r·(p + 1)` bytes are
//!   17 KiB for the usual `r = 8` (at worst 136 MiB for the largest `r` the format carries,
//!   65,535, which allows only `N ≤ 32`). OpenSSL's default is `N = 16384, r = 8, p = 1`:
//!   16 MiB. Memory is computed in `u128`, so no parameter can overflow the check.
//! - **Runs per file**: each encrypted PEM key, each PKCS#12 MAC, encrypted container and key
//!   bag is one derivation; a file may ask for at most 8. Each is checked and counted right
//!   before it runs, so a refused one never runs. A PKCS#12 file is tried with the given
//!   passphrase and then the empty one, so the worst case per file is 16 derivations at the
//!   caps.

use std::fmt;

/// The largest input file certraft reads, in bytes. Larger files are refused unparsed.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Certificates one file may hold (PEM blocks, PKCS#12 certificate bags).
pub const MAX_CERTS_PER_FILE: usize = 64;

/// Certificates all the files of one bundle may hold together, before de-duplication.
pub const MAX_CERTS_PER_BUNDLE: usize = 64;

/// Private keys one file may hold.
pub const MAX_KEYS_PER_FILE: usize = 8;

/// Subject alternative names (DNS and IP entries) one certificate may carry.
pub const MAX_SAN_NAMES_PER_CERT: usize = 1_000;

/// DER bytes of leaf + chain together; also the most any one certificate may be.
pub const MAX_BUNDLE_DER_BYTES: usize = 256 << 10;

/// Iterations of one PBKDF2 or PKCS#12 KDF derivation (key, IV or MAC key).
pub const MAX_KDF_ITERATIONS: u64 = 10_000_000;

/// Bytes of scrypt's `V` array, `128·N·r`.
pub const MAX_SCRYPT_MEMORY: u128 = 256 << 20;

/// scrypt's parallelisation parameter `p`.
pub const MAX_SCRYPT_PARALLELISM: u64 = 16;

/// Password-based key derivations one file may ask for.
pub const MAX_KDF_RUNS_PER_FILE: usize = 8;

/// A password-based key derivation as a file describes it, read before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// PBKDF2 under PBES2 (RFC 8018), any PRF.
    Pbkdf2 { iterations: u64 },
    /// The PKCS#12 KDF (RFC 7292 appendix B): of a `pbeWithSHAAnd…` cipher (for its key and
    /// again for its IV), or of the MAC over a whole PKCS#12 file.
    Pkcs12 { iterations: u64 },
    /// scrypt under PBES2 (RFC 7914): cost `n`, block size `r`, parallelisation `p`.
    Scrypt { n: u64, r: u64, p: u64 },
    /// A PBES2 key derivation function these caps do not describe.
    Unbounded,
}

impl Kdf {
    /// The derivation a PBES2 parameter block asks for (PKCS#8 keys, PKCS#12 bags and
    /// containers): PBKDF2 or scrypt.
    pub fn of_pbes2(kdf: &pkcs5::pbes2::Kdf<'_>) -> Kdf {
        match kdf {
            pkcs5::pbes2::Kdf::Pbkdf2(p) => Kdf::Pbkdf2 {
                iterations: u64::from(p.iteration_count),
            },
            pkcs5::pbes2::Kdf::Scrypt(s) => Kdf::Scrypt {
                n: s.cost_parameter,
                r: u64::from(s.block_size),
                p: u64::from(s.parallelization),
            },
            // pkcs5 0.7 knows only the two above; a later one is refused until it is bounded.
            _ => Kdf::Unbounded,
        }
    }
}

/// Why a key derivation is refused. The file and the next step are added by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KdfLimit {
    #[error("{kdf} with {iterations} iterations; certraft accepts at most {max}")]
    Iterations {
        kdf: &'static str,
        iterations: u64,
        max: u64,
    },
    #[error("scrypt N={n}, r={r}, which needs {} of memory; certraft accepts at most {} (128·N·r)", Bytes(*memory), Bytes(*max))]
    ScryptMemory {
        n: u64,
        r: u64,
        memory: u128,
        max: u128,
    },
    #[error(
        "scrypt p={p}, which makes {p} passes over its memory; certraft accepts at most p={max}"
    )]
    ScryptParallelism { p: u64, max: u64 },
    #[error("scrypt N={n}, which is not a power of two above 1 as scrypt requires")]
    ScryptCost { n: u64 },
    #[error("a PBES2 key derivation function certraft has no cost limits for")]
    Unbounded,
    #[error("{runs} password-based key derivations; certraft runs at most {max} per file")]
    TooManyRuns { runs: usize, max: usize },
}

/// Checks one derivation's parameters against the caps. Pure and cheap: nothing is derived.
pub fn check_kdf(kdf: Kdf) -> Result<(), KdfLimit> {
    let iterations = |kdf: &'static str, iterations: u64| {
        if iterations > MAX_KDF_ITERATIONS {
            Err(KdfLimit::Iterations {
                kdf,
                iterations,
                max: MAX_KDF_ITERATIONS,
            })
        } else {
            Ok(())
        }
    };
    match kdf {
        Kdf::Pbkdf2 { iterations: n } => iterations("PBKDF2", n),
        Kdf::Pkcs12 { iterations: n } => iterations("the PKCS#12 KDF", n),
        Kdf::Unbounded => Err(KdfLimit::Unbounded),
        Kdf::Scrypt { n, r, p } => {
            if n < 2 || !n.is_power_of_two() {
                return Err(KdfLimit::ScryptCost { n });
            }
            // u64 · u64 · 128 < 2^135 would overflow u128 only for absurd inputs; checked
            // arithmetic turns those into "too much" rather than a wrap-around.
            let memory = u128::from(n)
                .checked_mul(u128::from(r))
                .and_then(|m| m.checked_mul(128))
                .unwrap_or(u128::MAX);
            if memory > MAX_SCRYPT_MEMORY {
                return Err(KdfLimit::ScryptMemory {
                    n,
                    r,
                    memory,
                    max: MAX_SCRYPT_MEMORY,
                });
            }
            if p > MAX_SCRYPT_PARALLELISM {
                return Err(KdfLimit::ScryptParallelism {
                    p,
                    max: MAX_SCRYPT_PARALLELISM,
                });
            }
            Ok(())
        }
    }
}

/// The derivations one file has asked for so far: each is checked, and their number capped.
#[derive(Debug, Clone, Default)]
pub struct KdfBudget {
    runs: usize,
}

impl KdfBudget {
    /// Checks `kdf` and counts it against [`MAX_KDF_RUNS_PER_FILE`].
    pub fn charge(&mut self, kdf: Kdf) -> Result<(), KdfLimit> {
        check_kdf(kdf)?;
        self.runs += 1;
        if self.runs > MAX_KDF_RUNS_PER_FILE {
            return Err(KdfLimit::TooManyRuns {
                runs: self.runs,
                max: MAX_KDF_RUNS_PER_FILE,
            });
        }
        Ok(())
    }

    /// Derivations counted so far.
    pub fn runs(&self) -> usize {
        self.runs
    }
}

/// A byte count for messages: `1 TiB`, `256 MiB`, `1.5 KiB`, `300 bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u128);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 8] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
        if self.0 < 1024 {
            return write!(f, "{} bytes", self.0);
        }
        let mut unit = 0;
        let mut scale: u128 = 1024;
        while unit + 1 < UNITS.len() && self.0 >= scale * 1024 {
            unit += 1;
            scale *= 1024;
        }
        let whole = self.0 / scale;
        let tenths = (self.0 % scale) * 10 / scale;
        if tenths == 0 {
            write!(f, "{whole} {}", UNITS[unit])
        } else {
            write!(f, "{whole}.{tenths} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cap's boundary: at the cap is accepted, one past it is refused, with the values.
    #[test]
    fn kdf_caps_accept_at_the_cap_and_refuse_past_it() {
        let m = MAX_KDF_ITERATIONS;
        let cases: &[(Kdf, Option<&str>)] = &[
            (Kdf::Pbkdf2 { iterations: 1 }, None),
            (Kdf::Pbkdf2 { iterations: 2048 }, None),
            (Kdf::Pbkdf2 { iterations: 600_000 }, None),
            (Kdf::Pbkdf2 { iterations: m }, None),
            (Kdf::Pbkdf2 { iterations: m + 1 }, Some("PBKDF2 with 10000001 iterations; certraft accepts at most 10000000")),
            (Kdf::Pbkdf2 { iterations: (1 << 31) - 1 }, Some("2147483647 iterations")),
            (Kdf::Pbkdf2 { iterations: u64::MAX }, Some("18446744073709551615 iterations")),
            (Kdf::Pkcs12 { iterations: 0 }, None),
            (Kdf::Pkcs12 { iterations: m }, None),
            (Kdf::Pkcs12 { iterations: m + 1 }, Some("the PKCS#12 KDF with 10000001 iterations")),
            (Kdf::Pkcs12 { iterations: (1 << 31) - 1 }, Some("the PKCS#12 KDF with 2147483647 iterations")),
            (Kdf::Unbounded, Some("no cost limits")),
            // scrypt: OpenSSL's default, the memory cap exactly (two shapes), one step past it.
            (Kdf::Scrypt { n: 16384, r: 8, p: 1 }, None),
            (Kdf::Scrypt { n: 1 << 18, r: 8, p: 1 }, None),
            (Kdf::Scrypt { n: 1 << 20, r: 2, p: 16 }, None),
            (Kdf::Scrypt { n: 1 << 19, r: 8, p: 1 }, Some("scrypt N=524288, r=8, which needs 512 MiB of memory; certraft accepts at most 256 MiB (128·N·r)")),
            (Kdf::Scrypt { n: 1 << 30, r: 8, p: 1 }, Some("needs 1 TiB of memory")),
            (Kdf::Scrypt { n: 1 << 63, r: 65535, p: 1 }, Some("needs 63.9 YiB of memory")),
            (Kdf::Scrypt { n: 32, r: 65535, p: 16 }, None),
            (Kdf::Scrypt { n: 16384, r: 8, p: 17 }, Some("scrypt p=17, which makes 17 passes over its memory; certraft accepts at most p=16")),
            (Kdf::Scrypt { n: 0, r: 8, p: 1 }, Some("scrypt N=0, which is not a power of two")),
            (Kdf::Scrypt { n: 1, r: 8, p: 1 }, Some("scrypt N=1, which")),
            (Kdf::Scrypt { n: 3 << 10, r: 8, p: 1 }, Some("scrypt N=3072, which")),
        ];
        let mut failures = Vec::new();
        for (kdf, want) in cases {
            let got = check_kdf(*kdf).map_err(|e| e.to_string());
            let ok = match (want, &got) {
                (None, Ok(())) => true,
                (Some(needle), Err(msg)) => msg.contains(needle),
                _ => false,
            };
            if !ok {
                failures.push(format!("{kdf:?}: expected {want:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// A file may ask for [`MAX_KDF_RUNS_PER_FILE`] derivations and no more; a refused
    /// derivation is reported as itself, not as one run too many.
    #[test]
    fn budget_counts_runs_per_file() {
        let mut budget = KdfBudget::default();
        for _ in 0..MAX_KDF_RUNS_PER_FILE {
            budget.charge(Kdf::Pbkdf2 { iterations: 2048 }).unwrap();
        }
        assert_eq!(
            budget.charge(Kdf::Pbkdf2 { iterations: 2048 }),
            Err(KdfLimit::TooManyRuns {
                runs: MAX_KDF_RUNS_PER_FILE + 1,
                max: MAX_KDF_RUNS_PER_FILE
            })
        );
        let mut fresh = KdfBudget::default();
        assert!(matches!(
            fresh.charge(Kdf::Pkcs12 {
                iterations: u64::MAX
            }),
            Err(KdfLimit::Iterations { .. })
        ));
    }

    #[test]
    fn byte_counts_read_naturally() {
        for (n, want) in [
            (0u128, "0 bytes"),
            (1023, "1023 bytes"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (256 << 20, "256 MiB"),
            (1 << 40, "1 TiB"),
            (u128::MAX, "281474976710655.9 YiB"),
        ] {
            assert_eq!(Bytes(n).to_string(), want);
        }
    }
}
