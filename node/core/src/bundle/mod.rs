//! Bundles: turning operators' files into one validated, sealed certificate bundle and back.
//!
//! A leaf module: no async, no I/O beyond the bytes it is handed, no server code. The CLI uses
//! it for `certraft inspect`; the node for import, storage and serving.
//!
//! - [`formats`]: detect a file's format from its content; PEM, DER, PKCS#8 (plain and
//!   encrypted), PKCS#1, SEC1 and PKCS#12 → certificates and keys.
//! - `pkcs12` (private, for `formats`): certraft's own PKCS#12 reader (BER, every MAC and
//!   cipher real tools write), each key derivation checked against the caps before it runs.
//! - `pbe` (private): the PKCS#12 KDF and PBE ciphers, PBES2, the PKCS#12 MAC and PBMAC1.
//! - `pkcs7` (private, for `formats`): PKCS#7/CMS certs-only files (`.p7b`, `.p7c`, PEM
//!   `PKCS7`/`CMS`), DER or BER, through a small depth-bounded reader of their own.
//! - `legacy_pem` (private, for `formats`): keys under traditional OpenSSL PEM encryption
//!   (`Proc-Type: 4,ENCRYPTED`, `DEK-Info`; EVP_BytesToKey with MD5).
//! - [`key`]: private keys normalised to PKCS#8, passphrases; neither ever printed.
//! - [`cipher`]: the block and stream ciphers of encrypted key files, decryption only.
//! - [`cert`]: the facts about one X.509 certificate.
//! - [`assemble`](mod@assemble): exactly one key, its leaf, the chain ordered by signature, completeness,
//!   validity, warnings, the content-derived [`BundleId`].
//! - [`seal`]: AES-256-GCM records under a versioned [`Keyring`].
//! - [`record`]: the sealed bundle record and opening it into a rustls `CertifiedKey`.
//! - [`export`]: PKCS#12 (modern and legacy) and certificates-only PEM.
//! - [`report`]: the stable JSON/human report `certraft inspect` prints.
//! - [`limits`]: the caps on input size, certificates, names and password-based key
//!   derivation (scrypt memory, PBKDF2/PKCS#12 iterations), checked before the work they bound.

pub mod assemble;
pub mod cert;
pub mod cipher;
pub mod export;
pub mod formats;
pub mod key;
mod legacy_pem;
pub mod limits;
mod pbe;
mod pkcs12;
mod pkcs7;
pub mod record;
pub mod report;
pub mod seal;

/// Crafted encrypted keys and PKCS#12 files (KDF bombs among them) for the unit tests.
#[cfg(test)]
mod crafted;

pub use assemble::{
    assemble, AssembleError, AssembleOptions, Bundle, BundleId, Completeness, Warning,
};
pub use cert::CertInfo;
pub use export::{
    export_pem, export_pem_with_key, export_pkcs12, ExportError, ExportParts, PemKey, Pkcs12Profile,
};
pub use formats::{parse_file, FileFormat, FormatError, KdfSite, ParsedFile};
pub use key::{KeyKind, Passphrase, PrivateKey};
pub use record::{BundleMaterial, OpenError, SealedBundle};
pub use seal::{DataKey, Keyring, SealError};
